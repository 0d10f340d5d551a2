package stack

import (
	"reflect"
	"testing"
	"time"
)

func TestParseChatdSessions(t *testing.T) {
	log := `{"time":"2026-05-01T10:00:00.123456789Z","level":"INFO","msg":"chatd listening","addr":"127.0.0.1:5222"}
{"time":"2026-05-01T10:00:01.5Z","level":"INFO","msg":"login","remote":"127.0.0.1:40000","port":5222,"account":"15550100","shard":1,"epoch":7,"kind":"business"}
{"time":"2026-05-01T10:00:02Z","level":"INFO","msg":"login replaces the slot's previous connection","account":"15550100","shard":1,"old_epoch":7,"epoch":8}
not json: a panic or the race detector
{"time":"2026-05-01T10:00:03Z","level":"INFO","msg":"session ended","account":"15550100","shard":1,"epoch":7,"reason":"replaced","messages":12,"receipts":30}
{"time":"2026-05-01T10:00:04Z","level":"INFO","msg":"login","account":"15551234567","shard":0,"epoch":"9"}
`
	got := parseChatdSessions(log)
	want := []ChatdSession{
		{Event: "login", Account: "15550100", Shard: 1, Epoch: 7, Kind: "business", Time: time.Date(2026, 5, 1, 10, 0, 1, 500_000_000, time.UTC)},
		{Event: "session ended", Account: "15550100", Shard: 1, Epoch: 7, Time: time.Date(2026, 5, 1, 10, 0, 3, 0, time.UTC),
			Reason: "replaced", Messages: 12, Receipts: 30},
		{Event: "login", Account: "15551234567", Epoch: 9, Time: time.Date(2026, 5, 1, 10, 0, 4, 0, time.UTC)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseChatdSessions:\ngot  %+v\nwant %+v", got, want)
	}
}
