package waphone

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/openwaba/openwaba/chatd/wire"
)

// SandboxRootKey reads the network root key from chatd's sandbox admin API at
// admin (host:port). Trusting it is trust on first use: only do it over a
// path nobody else controls (loopback, the compose project's network).
func SandboxRootKey(ctx context.Context, admin string) (ed25519.PublicKey, error) {
	if admin == "" {
		return nil, fmt.Errorf("no root key given and no admin address to read it from")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/sandbox/root-key", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the network root key: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		RootKey string `json:"root_key"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body); err != nil {
		return nil, fmt.Errorf("read the network root key: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read the network root key: %s: %s", resp.Status, body.Error)
	}
	return wire.ParseRootKey(body.RootKey)
}

// rootKey returns the root key the phone pinned at registration.
func (hc homeConfig) rootKey() (ed25519.PublicKey, error) {
	if hc.RootKey == "" {
		return nil, fmt.Errorf("%s has no root_key (registered before the network had one): register again", configFile)
	}
	k, err := wire.ParseRootKey(hc.RootKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configFile, err)
	}
	return k, nil
}
