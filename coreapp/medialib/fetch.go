package medialib

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/openwaba/openwaba/coreapp/egress"
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

// ErrLink is a link that could not be fetched or is not acceptable. Its
// text is fit for the business (see egress.Describe).
var ErrLink = errors.New("media link")

// client returns the HTTP client of link fetches: every address checked
// after DNS resolution (egress), few redirects, credentials dropped on a
// change of origin. It uses no proxy (a proxy would connect on its behalf and
// hide the address) and keeps no connection: links point anywhere, and an
// idle connection would outlive the call (with its goroutines).
func (c FetchConfig) client() *http.Client {
	return egress.Policy{AllowPrivate: c.AllowPrivate, Timeout: c.Timeout, MaxRedirects: c.MaxRedirects}.Client()
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
		return Fetched{}, fmt.Errorf("%w: %s is not an http(s) URL", ErrLink, egress.RedactURL(link))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return Fetched{}, fmt.Errorf("%w: %s is not a valid URL", ErrLink, egress.RedactURL(link))
	}
	if provider != "" {
		p, err := s.provider(ctx, accountID, provider)
		if err != nil {
			return Fetched{}, err
		}
		if err := s.Fetch.CheckLink(p, link); err != nil {
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
		return Fetched{}, fmt.Errorf("%w: %s", ErrLink, egress.Describe(err))
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
		return Fetched{}, fmt.Errorf("%w: reading the response: %s", ErrLink, egress.Describe(err))
	}
	return Fetched{SHA256: sha, Size: size, MimeType: resp.Header.Get("Content-Type")}, nil
}

// Provider is a media provider's credentials and the hosts they may be
// sent to.
type Provider struct {
	Name          string
	Type          string
	Bearer        string
	BasicUsername string
	BasicPassword string
	// Hosts are exact host names ("media.example.com"), or "*.example.com"
	// for every subdomain of example.com (not example.com itself), each
	// optionally with ":port" (else any port). Case does not matter.
	Hosts []string
}

// Limits on a provider's hosts.
const (
	MaxProviderHosts = 20
	maxHostPattern   = 260
)

// ValidHostPattern reports why a provider host pattern is not acceptable,
// or nil.
func ValidHostPattern(h string) error {
	if h == "" || len(h) > maxHostPattern {
		return fmt.Errorf("a host must be 1 to %d characters", maxHostPattern)
	}
	if strings.Count(h, ":") > 1 && !strings.HasPrefix(h, "[") {
		return fmt.Errorf("%q: write an IPv6 address in brackets ([2001:db8::1])", h)
	}
	host, port := h, ""
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i+1:], "]") {
		host, port = h[:i], h[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: the port must be 1 to 65535", h)
		}
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	name := strings.TrimPrefix(host, "*.")
	if strings.Contains(name, "*") {
		return fmt.Errorf("%q: a wildcard is allowed only as the first label (*.example.com)", h)
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 && host != name {
		return fmt.Errorf("%q: a wildcard needs a domain of at least two labels", h)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") ||
			strings.ContainsFunc(l, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
			}) {
			return fmt.Errorf("%q is not a host name", h)
		}
	}
	return nil
}

// Allows reports whether the provider's credentials may be sent to u's
// host.
func (p Provider) Allows(u *url.URL) bool {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	for _, pat := range p.Hosts {
		pat = strings.ToLower(pat)
		ph, pp := pat, ""
		if i := strings.LastIndexByte(pat, ':'); i >= 0 && !strings.Contains(pat[i+1:], "]") {
			ph, pp = pat[:i], pat[i+1:]
		}
		ph = strings.TrimSuffix(strings.TrimPrefix(ph, "["), "]")
		if pp != "" {
			effective := port
			if effective == "" {
				effective = map[string]string{"http": "80", "https": "443"}[u.Scheme]
			}
			if pp != effective {
				continue
			}
		}
		if suffix, ok := strings.CutPrefix(ph, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if host == ph {
			return true
		}
	}
	return false
}

// hostError says why a link may not get the provider's credentials.
func (p Provider) hostError(u *url.URL) error {
	if len(p.Hosts) == 0 {
		return fmt.Errorf("media provider %q has no hosts configured: an admin must set its hosts before its credentials are used", p.Name)
	}
	return fmt.Errorf("the host %s is not among the hosts of media provider %q (%s)", u.Hostname(), p.Name, strings.Join(p.Hosts, ", "))
}

// CheckLink reports whether link may be fetched with the credentials of
// provider p: its host must be one of p's hosts, and, unless private links
// are allowed (development), it must be https.
func (c FetchConfig) CheckLink(p Provider, link string) error {
	u, err := url.Parse(link)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("%w: not an http(s) URL", ErrLink)
	}
	if !p.Allows(u) {
		return fmt.Errorf("%w: %w", ErrLink, p.hostError(u))
	}
	if u.Scheme != "https" && !c.AllowPrivate {
		return fmt.Errorf("%w: the credentials of media provider %q are sent over https only", ErrLink, p.Name)
	}
	return nil
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

// Provider returns the account's provider called name.
func (s *Store) Provider(ctx context.Context, accountID int64, name string) (Provider, error) {
	return s.provider(ctx, accountID, name)
}

// Providers returns the account's media providers, with their secrets.
func (s *Store) Providers(ctx context.Context, accountID int64) ([]Provider, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT name, type, bearer, basic_username, basic_password, hosts FROM media_providers WHERE account_id = ? ORDER BY name", accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Provider
	for rows.Next() {
		var p Provider
		var bearer, pass []byte
		var hosts sql.NullString
		if err := rows.Scan(&p.Name, &p.Type, &bearer, &p.BasicUsername, &pass, &hosts); err != nil {
			return nil, err
		}
		if hosts.Valid && hosts.String != "" {
			if err := json.Unmarshal([]byte(hosts.String), &p.Hosts); err != nil {
				return nil, fmt.Errorf("media provider %s: stored hosts: %w", p.Name, err)
			}
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
			hosts, err := json.Marshal(p.Hosts)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO media_providers (account_id, name, type, bearer, basic_username, basic_password, hosts, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE type = VALUES(type), bearer = VALUES(bearer),
				basic_username = VALUES(basic_username), basic_password = VALUES(basic_password), hosts = VALUES(hosts), updated_at = VALUES(updated_at)`,
				accountID, p.Name, p.Type, bearer, p.BasicUsername, pass, string(hosts), db.NowMillis()); err != nil {
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
