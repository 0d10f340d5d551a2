package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFileCommand(t *testing.T) {
	tests := []struct {
		args    string
		want    command
		wantErr bool
	}{
		{" /tmp/a.pdf", command{Cmd: "send", To: "15550001", File: "/tmp/a.pdf"}, false},
		{" a.jpg image", command{Cmd: "send", To: "15550001", File: "a.jpg", Type: "image"}, false},
		{" a.jpg image  look at this ", command{Cmd: "send", To: "15550001", File: "a.jpg", Type: "image", Caption: "look at this"}, false},
		{" a.pdf the Q3 report", command{Cmd: "send", To: "15550001", File: "a.pdf", Caption: "the Q3 report"}, false},
		{"", command{}, true},
		{"   ", command{}, true},
	}
	for _, tt := range tests {
		got, err := fileCommand("15550001", tt.args)
		if (err != nil) != tt.wantErr {
			t.Errorf("fileCommand(%q) err = %v, want error %v", tt.args, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("fileCommand(%q) mismatch (-want +got):\n%s", tt.args, diff)
		}
	}
}
