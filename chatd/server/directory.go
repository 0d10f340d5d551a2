package server

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

var errNoAccount = errors.New("no such account")

type account struct {
	number    string
	kind      chatdv1.AccountKind
	staticPub []byte
	name      string
	shards    int
	loaded    time.Time
}

// directory caches account rows for routing; a registration invalidates the
// number's entry.
type directory struct {
	db *sql.DB

	mu    sync.Mutex // guards cache
	cache map[string]*account
}

const directoryTTL = 30 * time.Second

func newDirectory(d *sql.DB) *directory {
	return &directory{db: d, cache: map[string]*account{}}
}

// lookup returns the account of number; fresh skips the cache.
func (d *directory) lookup(ctx context.Context, number string, fresh bool) (*account, error) {
	if !fresh {
		d.mu.Lock()
		a := d.cache[number]
		d.mu.Unlock()
		if a != nil && time.Since(a.loaded) < directoryTTL {
			return a, nil
		}
	}
	a := &account{number: number, loaded: time.Now()}
	var kind int32
	err := d.db.QueryRowContext(ctx, "SELECT kind, static_pub, name, shards FROM accounts WHERE number = ?", number).
		Scan(&kind, &a.staticPub, &a.name, &a.shards)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoAccount
	}
	if err != nil {
		return nil, err
	}
	a.kind = chatdv1.AccountKind(kind)
	d.mu.Lock()
	if len(d.cache) > 100_000 {
		clear(d.cache)
	}
	d.cache[number] = a
	d.mu.Unlock()
	return a, nil
}

func (d *directory) forget(number string) {
	d.mu.Lock()
	delete(d.cache, number)
	d.mu.Unlock()
}
