package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/openwaba/openwaba/coreapp/account"
	"github.com/openwaba/openwaba/coreapp/medialib"
	"github.com/openwaba/openwaba/coreapp/rpc"
	"github.com/openwaba/openwaba/coreapp/settings"
	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/db/dbtest"
	"github.com/openwaba/openwaba/db/keystore"
	"github.com/openwaba/openwaba/media/volume"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	"github.com/openwaba/openwaba/webapp/api"
	"github.com/openwaba/openwaba/webapp/auth"
)

// heapLimit is the most the heap may grow while a 100 MB file passes
// through the webapp and coreapp.
const heapLimit = 32 << 20

// heapWatch samples the heap in use until stopped and reports the peak
// growth over the level when it started.
type heapWatch struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func watchHeap() *heapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := &heapWatch{base: ms.HeapInuse, stop: make(chan struct{})}
	w.wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > w.base && ms.HeapInuse-w.base > w.peak.Load() {
				w.peak.Store(ms.HeapInuse - w.base)
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	})
	return w
}

func (w *heapWatch) growth() uint64 {
	close(w.stop)
	w.wg.Wait()
	return w.peak.Load()
}

// TestMediaUploadMemory sends a 100 MB document through the webapp's HTTP
// handler and coreapp's gRPC server (over a real loopback gRPC connection),
// onto the volume, and back out with GET: the heap of the process running
// both grows by less than 32 MB either way, so neither holds the file.
func TestMediaUploadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MB")
	}
	d := dbtest.New(t, db.Core)
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	secret := make([]byte, 32)
	rand.Read(secret)
	ks, err := keystore.New(secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(`INSERT INTO accounts (wa_id, cc, phone_number, state, cert, created_at, verified_at) VALUES ('15550100', '1', '5550100', ?, '', 1, 1)`,
		account.StateVerified); err != nil {
		t.Fatal(err)
	}
	vol, err := volume.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ml := medialib.New(d, vol, ks, log)

	// coreapp's gRPC server.
	token := []byte("cluster-token-for-the-memory-test")
	gs := grpc.NewServer(grpc.UnaryInterceptor(rpc.AuthInterceptor(token)), grpc.StreamInterceptor(rpc.StreamAuthInterceptor(token)))
	corev1.RegisterCoreServer(gs, rpc.New(log, account.NewStore(d, log, nil, nil, ks), settings.NewStore(d), nil, nil, nil, ml, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// The webapp's REST API in front of it.
	store := auth.New(d, auth.Options{BcryptCost: bcrypt.MinCost})
	if err := store.SeedAdmin(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := store.Login(ctx, "", "admin", "secret", "N3w-password!")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api.New(corev1.NewCoreClient(conn), store, log, api.Options{CoreToken: string(token)}).Handler())
	defer hs.Close()

	const size = 100 << 20
	src := io.LimitReader(mrand.NewChaCha8([32]byte{1, 2, 3}), size)
	want := sha256.New()
	req, err := http.NewRequestWithContext(ctx, "POST", hs.URL+"/v1/media", io.TeeReader(src, want))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/pdf")
	req.Header.Set("Authorization", "Bearer "+tok.Value)

	w := watchHeap()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	up := w.growth()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var out struct {
		Media []struct{ ID string } `json:"media"`
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Media) != 1 {
		t.Fatalf("upload answer %s", body)
	}
	id := out.Media[0].ID
	t.Logf("upload of 100 MB: heap grew by at most %.1f MB", float64(up)/(1<<20))
	if up >= heapLimit {
		t.Errorf("the heap grew by %d bytes during a 100 MB upload, want < %d", up, heapLimit)
	}

	// The file on the volume is the one sent.
	in, err := ml.Lookup(ctx, 1, id)
	if err != nil {
		t.Fatal(err)
	}
	if in.SHA256 != hex.EncodeToString(want.Sum(nil)) || in.Size != size {
		t.Fatalf("stored %s (%d bytes), want %x (%d)", in.SHA256, in.Size, want.Sum(nil), size)
	}

	// And back out.
	w = watchHeap()
	greq, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/v1/media/"+id, nil)
	greq.Header.Set("Authorization", "Bearer "+tok.Value)
	gresp, err := http.DefaultClient.Do(greq)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, gresp.Body)
	gresp.Body.Close()
	down := w.growth()
	if err != nil || gresp.StatusCode != 200 || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("download: %d, %d bytes, %v, hash equal %v", gresp.StatusCode, n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
	}
	if ct, cl := gresp.Header.Get("Content-Type"), gresp.Header.Get("Content-Length"); ct != "application/pdf" || cl != fmt.Sprint(size) {
		t.Errorf("download headers: Content-Type %q, Content-Length %q", ct, cl)
	}
	t.Logf("download of 100 MB: heap grew by at most %.1f MB", float64(down)/(1<<20))
	if down >= heapLimit {
		t.Errorf("the heap grew by %d bytes during a 100 MB download, want < %d", down, heapLimit)
	}
}
