package profile

import (
	"errors"
	"testing"

	"github.com/openwaba/openwaba/api/errcode"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
)

func TestStore(t *testing.T) {
	s := NewStore(dbtest.New(t, db.Core))
	ctx := t.Context()
	if p, err := s.Get(ctx, 1); err != nil || p.About != "" {
		t.Fatalf("a profile never set = %+v, %v", p, err)
	}
	if _, err := s.Update(ctx, 1, []byte(`{"messaging_product":"whatsapp","about":"Fresh bread daily","websites":["https://bakery.example"]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, 1, []byte(`{"messaging_product":"whatsapp","vertical":"GROCERY"}`)); err != nil {
		t.Fatal(err)
	}
	var ce *errcode.Error
	if _, err := s.Update(ctx, 1, []byte(`{"messaging_product":"whatsapp","vertical":"BAKERY"}`)); !errors.As(err, &ce) || ce.Code != errcode.Invalid {
		t.Errorf("a bad vertical = %v, want 1009", err)
	}
	p, err := s.Get(ctx, 1)
	if err != nil || p.About != "Fresh bread daily" || p.Vertical != "GROCERY" || len(p.Websites) != 1 {
		t.Errorf("profile = %+v, %v: the second update kept the first one's fields, the refused one changed nothing", p, err)
	}
	if other, _ := s.Get(ctx, 2); other.About != "" {
		t.Errorf("another account's profile = %+v", other)
	}
}
