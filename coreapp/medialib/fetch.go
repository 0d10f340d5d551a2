package medialib

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/media"
	"github.com/openwaba/openwaba/media/volume"
)

// FetchConfig says how links are fetched.
type FetchConfig struct {
	// AllowPrivate allows links to loopback, private, link-local and other
	// non-public addresses (WA_MEDIA_ALLOW_PRIVATE_LINKS; for development).
	AllowPrivate bool
	Timeout      time.Duration
	MaxRedirects int
}

// DefaultFetch is a 60 s timeout, 3 redirects, public addresses only.
func DefaultFetch() FetchConfig {
	return FetchConfig{Timeout: 60 * time.Second, MaxRedirects: 3}
}

// ErrLink is a link that could not be fetched or is not acceptable.
var ErrLink = errors.New("media link")

// errPrivate is returned by the dialer for a non-public address.
var errPrivate = errors.New("address is not public")

// public reports whether ip is a public unicast address.
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// nonPublic are the ranges besides loopback, private, link-local and
// multicast that lead to hosts of the local network, or translate to any
// IPv4 address (including private ones).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("fc00::/7"),      // unique local
	netip.MustParsePrefix("fec0::/10"),     // site-local
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"), // 6to4
	netip.MustParsePrefix("2001::/32"), // Teredo
}

// client returns an HTTP client that checks every address it connects to
// after DNS resolution (so a name that resolves, or later re-resolves, to a
// private address is refused) and follows few redirects. It uses no proxy:
// a proxy would connect on its behalf and hide the address.
func (c FetchConfig) client() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(network, address string, _ syscall.RawConn) error {
		if c.AllowPrivate {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !public(ap.Addr()) {
			return fmt.Errorf("%w: %s", errPrivate, address)
		}
		return nil
	}}
	return &http.Client{
		Timeout: c.Timeout,
		// No connection is kept: links point anywhere, and an idle
		// connection would outlive the call (with its goroutines).
		Transport: &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: 10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second, DisableKeepAlives: true},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > c.MaxRedirects {
				return fmt.Errorf("more than %d redirects", c.MaxRedirects)
			}
			if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			return nil
		},
	}
}

// Fetched is a link's content, stored on the volume.
type Fetched struct {
	SHA256   string
	Size     int64
	MimeType string
}

// FetchLink downloads link onto the volume for sending as msgType, with the
// credentials of the named provider. The response must be 200, at most the
// type's size limit, and of a MIME type that can be sent as msgType.
func (s *Store) FetchLink(ctx context.Context, accountID int64, link, provider, msgType string) (Fetched, error) {
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Fetched{}, fmt.Errorf("%w: %q is not an http(s) URL", ErrLink, link)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return Fetched{}, fmt.Errorf("%w: %v", ErrLink, err)
	}
	if provider != "" {
		p, err := s.provider(ctx, accountID, provider)
		if err != nil {
			return Fetched{}, err
		}
		switch {
		case p.Bearer != "":
			req.Header.Set("Authorization", "Bearer "+p.Bearer)
		case p.BasicUsername != "":
			req.SetBasicAuth(p.BasicUsername, p.BasicPassword)
		}
	}
	req.Header.Set("User-Agent", "openwaba-media/1")
	resp, err := s.Fetch.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Fetched{}, ctx.Err() // stopping, not a bad link
		}
		return Fetched{}, fmt.Errorf("%w: %v", ErrLink, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Fetched{}, fmt.Errorf("%w: %s answered %s", ErrLink, u.Host, resp.Status)
	}
	limit := media.Limit(msgType)
	if resp.ContentLength > limit {
		return Fetched{}, fmt.Errorf("%w: %d bytes, more than the %d allowed for %s", ErrLink, resp.ContentLength, limit, msgType)
	}
	mt := media.BaseType(resp.Header.Get("Content-Type"))
	if !media.Sendable(mt, msgType) {
		return Fetched{}, fmt.Errorf("%w: content type %q cannot be sent as %s", ErrLink, mt, msgType)
	}
	sha, size, err := s.vol.Put(resp.Body, limit)
	switch {
	case errors.Is(err, volume.ErrTooLarge), errors.Is(err, volume.ErrEmpty):
		return Fetched{}, fmt.Errorf("%w: %v", ErrLink, err)
	case err != nil && ctx.Err() != nil:
		return Fetched{}, ctx.Err()
	case err != nil:
		// Reading the body failed (the server cut it, or timed out), or
		// writing the volume did: only the first is the link's fault.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return Fetched{}, err
		}
		return Fetched{}, fmt.Errorf("%w: %v", ErrLink, err)
	}
	return Fetched{SHA256: sha, Size: size, MimeType: resp.Header.Get("Content-Type")}, nil
}

// Provider is a media provider's credentials.
type Provider struct {
	Name          string
	Type          string
	Bearer        string
	BasicUsername string
	BasicPassword string
}

func (s *Store) provider(ctx context.Context, accountID int64, name string) (Provider, error) {
	ps, err := s.Providers(ctx, accountID)
	if err != nil {
		return Provider{}, err
	}
	for _, p := range ps {
		if p.Name == name {
			return p, nil
		}
	}
	return Provider{}, fmt.Errorf("%w: no media provider %q", ErrLink, name)
}

func provContext(accountID int64, name, field string) string {
	return "provider/" + itoa(accountID) + "/" + name + "/" + field
}

// Providers returns the account's media providers, with their secrets.
func (s *Store) Providers(ctx context.Context, accountID int64) ([]Provider, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT name, type, bearer, basic_username, basic_password FROM media_providers WHERE account_id = ? ORDER BY name", accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Provider
	for rows.Next() {
		var p Provider
		var bearer, pass []byte
		if err := rows.Scan(&p.Name, &p.Type, &bearer, &p.BasicUsername, &pass); err != nil {
			return nil, err
		}
		if bearer != nil {
			b, err := s.ks.Open(bearer, provContext(accountID, p.Name, "bearer"))
			if err != nil {
				return nil, err
			}
			p.Bearer = string(b)
		}
		if pass != nil {
			b, err := s.ks.Open(pass, provContext(accountID, p.Name, "password"))
			if err != nil {
				return nil, err
			}
			p.BasicPassword = string(b)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// SetProviders adds providers, replacing those of the same name.
func (s *Store) SetProviders(ctx context.Context, accountID int64, ps []Provider) error {
	return db.Tx(ctx, s.db, func(tx *sql.Tx) error {
		for _, p := range ps {
			var bearer, pass []byte
			if p.Bearer != "" {
				bearer = s.ks.Seal([]byte(p.Bearer), provContext(accountID, p.Name, "bearer"))
			}
			if p.BasicPassword != "" {
				pass = s.ks.Seal([]byte(p.BasicPassword), provContext(accountID, p.Name, "password"))
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO media_providers (account_id, name, type, bearer, basic_username, basic_password, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE type = VALUES(type), bearer = VALUES(bearer),
				basic_username = VALUES(basic_username), basic_password = VALUES(basic_password), updated_at = VALUES(updated_at)`,
				accountID, p.Name, p.Type, bearer, p.BasicUsername, pass, db.NowMillis()); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteProvider removes a provider.
func (s *Store) DeleteProvider(ctx context.Context, accountID int64, name string) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM media_providers WHERE account_id = ? AND name = ?", accountID, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("provider %q: %w", name, ErrNotFound)
	}
	return nil
}
