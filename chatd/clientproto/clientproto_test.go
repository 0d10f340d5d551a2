package clientproto_test

import (
	"context"
	"errors"
	"testing"

	"github.com/openwaba/openwaba/chatd/clientproto"
	chatdv1 "github.com/openwaba/openwaba/proto/gen/chatd/v1"
)

// TestEnsurePreKeys: the pool policy both sides follow — the first upload
// when chatd has none, a top-up below the low mark, nothing otherwise —
// and the upload is the IQ sent after the count.
func TestEnsurePreKeys(t *testing.T) {
	for _, c := range []struct {
		name             string
		published        bool
		count            uint32
		wantN            int
		wantFirst        bool
		countErr, genErr error
	}{
		{name: "none published", wantN: clientproto.FirstPreKeys, wantFirst: true},
		{name: "low", published: true, count: clientproto.LowPreKeys - 1, wantN: clientproto.TopUpPreKeys},
		{name: "enough", published: true, count: clientproto.LowPreKeys},
		{name: "count fails", countErr: errors.New("offline")},
		{name: "generate fails", genErr: errors.New("no entropy"), wantFirst: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var uploaded *chatdv1.PreKeyUpload
			iq := func(_ context.Context, q *chatdv1.IQ) (*chatdv1.IQ, error) {
				switch p := q.Payload.(type) {
				case *chatdv1.IQ_PrekeyCount:
					if c.countErr != nil {
						return nil, c.countErr
					}
					return &chatdv1.IQ{Payload: &chatdv1.IQ_PrekeyCount{PrekeyCount: &chatdv1.PreKeyCount{Published: c.published, Count: c.count}}}, nil
				case *chatdv1.IQ_PrekeyUpload:
					uploaded = p.PrekeyUpload
					return &chatdv1.IQ{}, nil
				}
				t.Fatalf("unexpected IQ %T", q.Payload)
				return nil, nil
			}
			asked := 0
			gen := func(n int) (*chatdv1.PreKeyUpload, error) {
				asked = n
				if c.genErr != nil {
					return nil, c.genErr
				}
				return &chatdv1.PreKeyUpload{Prekeys: make([]*chatdv1.PreKey, n)}, nil
			}
			n, first, err := clientproto.EnsurePreKeys(t.Context(), iq, gen)
			wantErr := c.countErr != nil || c.genErr != nil
			if (err != nil) != wantErr || first != c.wantFirst {
				t.Fatalf("EnsurePreKeys = %d, %v, %v", n, first, err)
			}
			if wantErr {
				if n != 0 || uploaded != nil {
					t.Errorf("after an error: %d published, upload %v", n, uploaded)
				}
				return
			}
			if n != c.wantN || asked != c.wantN || (n > 0) != (uploaded != nil) || (uploaded != nil && len(uploaded.Prekeys) != n) {
				t.Errorf("EnsurePreKeys = %d (generated %d, uploaded %v), want %d", n, asked, uploaded != nil, c.wantN)
			}
		})
	}
}
