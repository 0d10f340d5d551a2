package api

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the architecture: the webapp talks to coreapp
// over gRPC only, and never to the chat network.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/openwaba/openwaba/webapp/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/openwaba/openwaba/chatd", "github.com/openwaba/openwaba/coreapp"} {
			if pkg == banned || strings.HasPrefix(pkg, banned+"/") {
				t.Errorf("webapp depends on %s", pkg)
			}
		}
	}
}
