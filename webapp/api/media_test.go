package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/openwaba/openwaba/media"
	corev1 "github.com/openwaba/openwaba/proto/gen/core/v1"
	messagev1 "github.com/openwaba/openwaba/proto/gen/message/v1"
)

const chunkSize = media.StreamChunk

// uploads is a client stream interceptor that takes coreapp's place on
// UploadMedia without any server or network: it records what the webapp
// streams, discards the bytes (keeping their SHA-256), and answers with id,
// or with fail when set. Other streams go on to the (unreachable) coreapp.
type uploads struct {
	mu      sync.Mutex
	id      string
	fail    error
	sample  func(total int64) // called after every chunk, with the bytes so far
	streams []*upload
}

func (us *uploads) reset(id string, fail error) {
	us.mu.Lock()
	defer us.mu.Unlock()
	us.id, us.fail, us.streams = id, fail, nil
}

func (us *uploads) taken() []*upload {
	us.mu.Lock()
	defer us.mu.Unlock()
	return us.streams
}

func (us *uploads) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if method != corev1.Core_UploadMedia_FullMethodName {
		return streamer(ctx, desc, cc, method, opts...)
	}
	us.mu.Lock()
	defer us.mu.Unlock()
	md, _ := metadata.FromOutgoingContext(ctx)
	u := &upload{ctx: ctx, md: md, id: us.id, fail: us.fail, sample: us.sample, sum: sha256.New(), ended: make(chan struct{})}
	context.AfterFunc(ctx, func() {
		u.mu.Lock()
		u.closedAtEnd = u.closed
		u.mu.Unlock()
		close(u.ended)
	})
	us.streams = append(us.streams, u)
	return u, nil
}

// upload is one UploadMedia stream, as coreapp would receive it.
type upload struct {
	ctx    context.Context
	md     metadata.MD
	id     string
	fail   error
	sample func(int64)
	ended  chan struct{} // closed when the stream's context is done

	mu          sync.Mutex // guards the fields below
	msgs        int
	header      *corev1.UploadMediaHeader
	chunks      []int // sizes
	total       int64
	sum         hash.Hash
	problems    []string // protocol violations
	closed      bool     // CloseSend was called (the upload is complete)
	closedAtEnd bool     // CloseSend had been called when the context ended; false: cancelled mid-stream
}

func (u *upload) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (u *upload) Trailer() metadata.MD         { return metadata.MD{} }
func (u *upload) Context() context.Context     { return u.ctx }

func (u *upload) CloseSend() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	return nil
}

func (u *upload) SendMsg(m any) error {
	if u.ctx.Err() != nil {
		return io.EOF // as grpc-go: the status comes from RecvMsg
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.msgs++
	if u.closed {
		u.problems = append(u.problems, "message after CloseSend")
	}
	switch p := m.(*corev1.UploadMediaRequest).GetPart().(type) {
	case *corev1.UploadMediaRequest_Header:
		if u.msgs != 1 {
			u.problems = append(u.problems, fmt.Sprintf("header as message %d", u.msgs))
		}
		u.header = proto.Clone(p.Header).(*corev1.UploadMediaHeader)
	case *corev1.UploadMediaRequest_Chunk:
		if u.msgs == 1 {
			u.problems = append(u.problems, "chunk before the header")
		}
		u.chunks = append(u.chunks, len(p.Chunk))
		u.total += int64(len(p.Chunk))
		u.sum.Write(p.Chunk)
		if u.sample != nil {
			u.sample(u.total)
		}
	default:
		u.problems = append(u.problems, fmt.Sprintf("message %d has no part", u.msgs))
	}
	return nil
}

func (u *upload) RecvMsg(m any) error {
	if err := u.ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.closed {
		return status.Error(codes.Internal, "test: RecvMsg before CloseSend")
	}
	if u.fail != nil {
		return u.fail
	}
	proto.Merge(m.(proto.Message), &corev1.UploadMediaResponse{Id: u.id})
	return nil
}

// wait returns once the stream's context has ended, and whether the webapp
// had completed the upload (CloseSend) by then.
func (u *upload) wait(t *testing.T) (completed bool) {
	t.Helper()
	select {
	case <-u.ended:
	case <-t.Context().Done():
		t.Fatal("the upload stream was never ended")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closedAtEnd
}

// pattern yields n bytes of a fixed pattern, at most step bytes per Read,
// without allocating. read counts the bytes taken from it.
type pattern struct {
	n, step int64
	off     int64
	read    atomic.Int64
}

var patternBlock = func() []byte {
	b := make([]byte, 4093) // a prime length: chunks never align with it
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}()

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	want := int(min(int64(len(b)), p.n-p.off))
	if p.step > 0 {
		want = int(min(int64(want), p.step))
	}
	done := 0
	for done < want {
		done += copy(b[done:want], patternBlock[(p.off+int64(done))%int64(len(patternBlock)):])
	}
	p.off += int64(done)
	p.read.Add(int64(done))
	return done, nil
}

func patternBytes(n int) []byte {
	b, err := io.ReadAll(&pattern{n: int64(n)})
	if err != nil {
		panic(err)
	}
	return b
}

func contentLength(n int64) reqOpt {
	return func(r *http.Request) { r.ContentLength = n }
}

// mediaEnv is a fixture whose coreapp is unreachable, with UploadMedia
// answered by an uploads interceptor and unary calls recorded (and answered
// as the test says) by a recorder.
type mediaEnv struct {
	*fixture
	up  *uploads
	rec *recorder
}

func newMediaEnv(t *testing.T) *mediaEnv {
	t.Helper()
	up := &uploads{}
	rec := &recorder{fail: func(string) error { return nil }}
	f := newFixtureWith(t, unreachableCoreWith(t,
		grpc.WithChainStreamInterceptor(up.intercept),
		grpc.WithChainUnaryInterceptor(rec.intercept)))
	return &mediaEnv{fixture: f, up: up, rec: rec}
}

func TestUploadStreamsChunks(t *testing.T) {
	e := newMediaEnv(t)
	file := patternBytes(3*chunkSize + 5)
	wantSum := sha256.Sum256(file)

	tests := []struct {
		name        string
		contentType string
		body        io.Reader
		opts        []reqOpt
		wantAccount *corev1.AccountRef
		wantMIME    string
	}{
		{
			name: "JPEG by a user, in small writes with Content-Length", contentType: "image/jpeg",
			body: &pattern{n: int64(len(file)), step: 1000}, opts: []reqOpt{bearer(e.alice), contentLength(int64(len(file)))},
			wantAccount: &corev1.AccountRef{Caller: corev1.Caller_CALLER_USER}, wantMIME: "image/jpeg",
		},
		{
			name: "opus voice note with an API key, chunked", contentType: "audio/ogg; codecs=opus",
			body: io.MultiReader(bytes.NewReader(file)), opts: []reqOpt{d360(e.key.Key)},
			wantAccount: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}, wantMIME: "audio/ogg; codecs=opus",
		},
		{
			name: "upper-case type with odd parameter spacing", contentType: "Application/PDF ;  Name=\"a.pdf\"",
			body: bytes.NewReader(file), opts: []reqOpt{bearer(e.admin)},
			wantAccount: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, wantMIME: "application/pdf; name=a.pdf",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.up.reset("f81d4fae-7dec-11d0-a765-00a0c91e6bf6", nil)
			r := e.do(t, "POST", "/v1/media", tt.body, append(tt.opts, header("Content-Type", tt.contentType), header("X-Request-Id", "up-1"))...)
			want := `{"media":[{"id":"f81d4fae-7dec-11d0-a765-00a0c91e6bf6"}],"meta":{"api_status":"stable","version":"v2.53.0-openwaba"}}`
			if diff := cmp.Diff(want, string(bytes.TrimSpace(r.body))); r.status != 201 || diff != "" {
				t.Fatalf("status %d, body mismatch (-want +got):\n%s", r.status, diff)
			}
			streams := e.up.taken()
			if len(streams) != 1 {
				t.Fatalf("%d UploadMedia streams, want 1", len(streams))
			}
			u := streams[0]
			if !u.wait(t) {
				t.Errorf("the stream was cancelled before CloseSend")
			}
			u.mu.Lock()
			defer u.mu.Unlock()
			if len(u.problems) > 0 {
				t.Errorf("protocol problems: %v", u.problems)
			}
			wantHeader := &corev1.UploadMediaHeader{Account: tt.wantAccount, MimeType: tt.wantMIME}
			if diff := cmp.Diff(wantHeader, u.header, protocmp.Transform()); diff != "" {
				t.Errorf("header mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]int{chunkSize, chunkSize, chunkSize, 5}, u.chunks); diff != "" {
				t.Errorf("chunk sizes mismatch (-want +got):\n%s", diff)
			}
			if got := [32]byte(u.sum.Sum(nil)); got != wantSum {
				t.Errorf("coreapp received %d bytes that differ from the %d uploaded", u.total, len(file))
			}
			if diff := cmp.Diff([]string{"Bearer " + coreToken}, u.md.Get("authorization")); diff != "" {
				t.Errorf("authorization metadata mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"up-1"}, u.md.Get("x-request-id")); diff != "" {
				t.Errorf("x-request-id metadata mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("a coreapp refusal is the envelope", func(t *testing.T) {
		e.up.reset("", withDetail(codes.ResourceExhausted, "", &corev1.Error{Code: 1016, Details: "media volume full"}))
		r := e.do(t, "POST", "/v1/media", bytes.NewReader(file), bearer(e.admin), header("Content-Type", "image/png"))
		wantError(t, r, 429, 1016, "media volume full")
	})
}

// TestUploadMemoryIsFlat sends a 100 MB file through the handler to a stream
// that discards it: the heap must not grow with the file.
func TestUploadMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 100 MB")
	}
	e := newMediaEnv(t)
	upload := func(n int64) response {
		t.Helper()
		return e.do(t, "POST", "/v1/media", &pattern{n: n, step: 1 << 20}, bearer(e.admin), header("Content-Type", "video/mp4"), contentLength(n))
	}
	e.up.reset("warm-up", nil)
	if r := upload(1 << 20); r.status != 201 { // connections, pools, caches
		t.Fatalf("warm-up upload: status %d, body %s", r.status, r.body)
	}

	var peak uint64
	e.up.mu.Lock()
	e.up.sample = func(total int64) {
		if total%(4<<20) == 0 || total == media.MaxUpload {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	e.up.mu.Unlock()
	e.up.reset("big", nil)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse

	r := upload(media.MaxUpload)
	if r.status != 201 {
		t.Fatalf("100 MB upload: status %d, body %s", r.status, r.body)
	}
	runtime.ReadMemStats(&ms)
	after := ms.HeapInuse
	streams := e.up.taken()
	if len(streams) != 1 {
		t.Fatalf("%d streams, want 1", len(streams))
	}
	u := streams[0]
	u.wait(t)
	u.mu.Lock()
	total, chunks, problems := u.total, len(u.chunks), u.problems
	u.mu.Unlock()
	if want := (media.MaxUpload + chunkSize - 1) / chunkSize; total != media.MaxUpload || chunks != want || len(problems) > 0 {
		t.Errorf("coreapp received %d bytes in %d chunks (problems %v), want %d in %d", total, chunks, problems, media.MaxUpload, want)
	}
	const limit = 8 << 20
	grow := func(v uint64) int64 { return int64(v) - int64(before) }
	t.Logf("HeapInuse before %d, peak during the upload %+d, after %+d", before, grow(peak), grow(after))
	if grow(peak) > limit || grow(after) > limit {
		t.Errorf("the heap grew by %d bytes during a 100 MB upload (%d after it), more than %d", grow(peak), grow(after), limit)
	}
}

func TestUploadTooLarge(t *testing.T) {
	e := newMediaEnv(t)

	t.Run("refused by Content-Length before reading", func(t *testing.T) {
		e.up.reset("never", nil)
		body := &pattern{n: media.MaxUpload + 1}
		r := e.do(t, "POST", "/v1/media", body, bearer(e.admin), header("Content-Type", "video/mp4"), contentLength(media.MaxUpload+1))
		wantError(t, r, 413, 1009, "larger than 100 MB")
		if n := len(e.up.taken()); n != 0 {
			t.Errorf("%d UploadMedia streams opened, want none", n)
		}
	})

	t.Run("chunked, stopped at the limit and the stream cancelled", func(t *testing.T) {
		e.up.reset("never", nil)
		body := &pattern{n: media.MaxUpload + 64<<20}
		r := e.do(t, "POST", "/v1/media", body, d360(e.key.Key), header("Content-Type", "application/pdf"))
		wantError(t, r, 413, 1009, "larger than 100 MB")
		if r.errors[0].Title != "Parameter value is not valid" {
			t.Errorf("title = %q, want Parameter value is not valid", r.errors[0].Title)
		}
		streams := e.up.taken()
		if len(streams) != 1 {
			t.Fatalf("%d UploadMedia streams, want 1", len(streams))
		}
		u := streams[0]
		if u.wait(t) {
			t.Errorf("the stream was completed (CloseSend), want it cancelled so that coreapp discards the file")
		}
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.total > media.MaxUpload {
			t.Errorf("coreapp received %d bytes, more than %d", u.total, media.MaxUpload)
		}
		for i, n := range u.chunks {
			if n > chunkSize {
				t.Fatalf("chunk %d has %d bytes", i, n)
			}
		}
		// The webapp stopped reading: the client could only write what the
		// connection buffers and the server's post-handler discard took.
		read := body.read.Load()
		t.Logf("the client wrote %d bytes, %d past the limit", read, read-media.MaxUpload)
		if read > media.MaxUpload+32<<20 {
			t.Errorf("the client wrote %d bytes of %d, want the server to stop reading near %d", read, body.n, media.MaxUpload)
		}
	})
}

// TestUploadEmptyChunked sends an empty chunked body on a raw connection
// (Go's client would turn it into Content-Length: 0).
func TestUploadEmptyChunked(t *testing.T) {
	e := newMediaEnv(t)
	e.up.reset("never", nil)
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/media HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", u.Host, e.admin)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 400 || !strings.Contains(string(b), `"code":1008`) || !strings.Contains(string(b), "empty upload") {
		t.Errorf("status %d, body %s; want 400 with code 1008 and empty upload", res.StatusCode, b)
	}
	if n := len(e.up.taken()); n != 0 {
		t.Errorf("%d UploadMedia streams opened, want none", n)
	}
}

// mediaFiles is a minimal coreapp for the download tests only, on bufconn,
// so that the webapp's real gRPC client stream is exercised: DownloadMedia
// streams known files and failures.
type mediaFiles struct {
	corev1.UnimplementedCoreServer
	photo   []byte
	release chan struct{} // the photo's second half waits for it

	mu   sync.Mutex
	reqs []*corev1.DownloadMediaRequest
	mds  []metadata.MD
}

func (m *mediaFiles) DownloadMedia(req *corev1.DownloadMediaRequest, stream grpc.ServerStreamingServer[corev1.DownloadMediaResponse]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	m.mu.Lock()
	m.reqs = append(m.reqs, proto.Clone(req).(*corev1.DownloadMediaRequest))
	m.mds = append(m.mds, md)
	m.mu.Unlock()
	header := func(mime string, size int64) error {
		return stream.Send(&corev1.DownloadMediaResponse{Part: &corev1.DownloadMediaResponse_Header{Header: &corev1.DownloadMediaHeader{MimeType: mime, Size: size}}})
	}
	chunk := func(b []byte) error {
		return stream.Send(&corev1.DownloadMediaResponse{Part: &corev1.DownloadMediaResponse_Chunk{Chunk: b}})
	}
	switch req.GetId() {
	case "photo":
		if err := header("image/jpeg", int64(len(m.photo))); err != nil {
			return err
		}
		if err := chunk(m.photo[:chunkSize]); err != nil {
			return err
		}
		select { // the client must have the first chunk before the rest exists
		case <-m.release:
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-time.After(10 * time.Second):
			return status.Error(codes.DeadlineExceeded, "test: the client never read the first chunk")
		}
		for rest := m.photo[chunkSize:]; len(rest) > 0; rest = rest[min(len(rest), chunkSize):] {
			if err := chunk(rest[:min(len(rest), chunkSize)]); err != nil {
				return err
			}
		}
		return nil
	case "empty":
		return header("", 0)
	case "denied":
		return status.Error(codes.PermissionDenied, "this file belongs to another number")
	case "broken":
		if err := header("application/pdf", 1000); err != nil {
			return err
		}
		if err := chunk(make([]byte, 100)); err != nil {
			return err
		}
		return status.Error(codes.Internal, "read /media/x: input/output error")
	case "short":
		if err := header("application/pdf", 1000); err != nil {
			return err
		}
		return chunk(make([]byte, 100))
	case "long":
		if err := header("application/pdf", 10); err != nil {
			return err
		}
		return chunk(make([]byte, 20))
	}
	return status.Errorf(codes.NotFound, "media %s not found", req.GetId())
}

// bufconnCore serves srv on an in-memory listener and returns a client.
func bufconnCore(t *testing.T, srv corev1.CoreServer) corev1.CoreClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	corev1.RegisterCoreServer(gs, srv)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient("passthrough:///core",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return corev1.NewCoreClient(conn)
}

func TestDownload(t *testing.T) {
	files := &mediaFiles{photo: patternBytes(3*chunkSize + 7), release: make(chan struct{})}
	f := newFixtureWith(t, bufconnCore(t, files))
	get := func(t *testing.T, id string, opts ...reqOpt) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "GET", f.url+"/v1/media/"+id, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			o(req)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	wantHeaders := func(t *testing.T, res *http.Response, status int, contentType, length string) {
		t.Helper()
		if res.StatusCode != status || res.Header.Get("Content-Type") != contentType || res.Header.Get("Content-Length") != length {
			t.Fatalf("status %d, Content-Type %q, Content-Length %q; want %d, %q, %q", res.StatusCode,
				res.Header.Get("Content-Type"), res.Header.Get("Content-Length"), status, contentType, length)
		}
	}

	t.Run("streamed as it arrives", func(t *testing.T) {
		res := get(t, "photo", d360(f.key.Key), header("X-Request-Id", "dl-1"))
		wantHeaders(t, res, 200, "image/jpeg", fmt.Sprint(len(files.photo)))
		first := make([]byte, chunkSize)
		if _, err := io.ReadFull(res.Body, first); err != nil {
			t.Fatalf("reading the first chunk while coreapp holds the rest: %v", err)
		}
		close(files.release)
		rest, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(append(first, rest...), files.photo) {
			t.Errorf("downloaded %d bytes that differ from the %d stored", chunkSize+len(rest), len(files.photo))
		}
		files.mu.Lock()
		defer files.mu.Unlock()
		want := &corev1.DownloadMediaRequest{Account: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}, Id: "photo"}
		if diff := cmp.Diff(want, files.reqs[len(files.reqs)-1], protocmp.Transform()); diff != "" {
			t.Errorf("request mismatch (-want +got):\n%s", diff)
		}
		md := files.mds[len(files.mds)-1]
		if diff := cmp.Diff([]string{"Bearer " + coreToken, "dl-1"}, append(md.Get("authorization"), md.Get("x-request-id")...)); diff != "" {
			t.Errorf("metadata mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("an empty file without a type", func(t *testing.T) {
		res := get(t, "empty", bearer(f.alice))
		wantHeaders(t, res, 200, "application/octet-stream", "0")
	})

	for _, id := range []string{"missing", strings.Repeat("x", 257), "%20"} {
		t.Run("404 with an empty body: "+id[:min(len(id), 8)], func(t *testing.T) {
			res := get(t, id, bearer(f.admin))
			b, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 404 || len(b) != 0 {
				t.Errorf("status %d, body %q; want 404 with an empty body", res.StatusCode, b)
			}
		})
	}

	t.Run("a failure before the header is the envelope", func(t *testing.T) {
		r := f.doJSON(t, "GET", "/v1/media/denied", "", bearer(f.admin))
		wantError(t, r, 403, 1005, "another number")
	})

	for _, id := range []string{"broken", "short", "long"} {
		t.Run("a failure after the header aborts the response: "+id, func(t *testing.T) {
			res := get(t, id, bearer(f.admin))
			if res.StatusCode != 200 {
				t.Fatalf("status %d, want 200 (the failure comes later)", res.StatusCode)
			}
			b, err := io.ReadAll(res.Body)
			if err == nil {
				t.Errorf("read a complete-looking body of %d bytes, want the transfer aborted", len(b))
			}
		})
	}

	t.Run("no credentials", func(t *testing.T) {
		r := f.doJSON(t, "GET", "/v1/media/photo", "")
		wantError(t, r, 401, 1005, "")
	})
}

// TestMediaCalls checks the requests of the unary media calls and the
// responses built from coreapp's answers (given by an interceptor).
func TestMediaCalls(t *testing.T) {
	e := newMediaEnv(t)
	providers := &corev1.MediaProviders{Providers: []*corev1.MediaProvider{
		{Name: "cdn", Type: "www", Bearer: "bearer-SECRET-1", Hosts: []string{"cdn.example"}},
		{Name: "files.example", Type: "www", BasicUsername: "uploader", BasicPassword: "basic-SECRET-2", Hosts: []string{"*.files.example", "files.example:8443"}},
	}}
	const metaJSON = `"meta":{"api_status":"stable","version":"v2.53.0-openwaba"}`

	tests := []struct {
		name         string
		method, path string
		body         string
		opts         []reqOpt
		fail         error
		reply        proto.Message
		status       int
		want         string // the whole body, or for errors the details wanted
		code         int
		wantMethod   string
		wantReq      proto.Message
	}{
		{
			name: "delete a file", method: "DELETE", path: "/v1/media/f81d4fae", opts: []reqOpt{bearer(e.alice)},
			status: 200, want: `{` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/DeleteMedia", wantReq: &corev1.DeleteMediaRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_USER}, Id: "f81d4fae"},
		},
		{
			name: "delete an unknown file", method: "DELETE", path: "/v1/media/nope", opts: []reqOpt{d360(e.key.Key)},
			fail: status.Error(codes.NotFound, "media nope not found"), status: 404, code: 1006, want: "nope not found",
			wantMethod: "/core.v1.Core/DeleteMedia", wantReq: &corev1.DeleteMediaRequest{Account: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}, Id: "nope"},
		},
		{
			name: "delete an impossible id", method: "DELETE", path: "/v1/media/" + strings.Repeat("x", 257), opts: []reqOpt{bearer(e.admin)},
			status: 404, code: 1006, want: "media not found",
		},
		{
			name: "media garbage collection", method: "PUT", path: "/v1/services/media/gc", opts: []reqOpt{bearer(e.admin)},
			reply: &corev1.CollectMediaResponse{Status: "processing"}, status: 200,
			want:       `{"services":{"media":{"gc":{"status":"processing"}}},` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/CollectMedia", wantReq: &corev1.CollectMediaRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}},
		},
		{
			name: "media garbage collection with an API key and an empty object", method: "PUT", path: "/v1/services/media/gc", body: `{}`, opts: []reqOpt{d360(e.key.Key)},
			status:     200,
			want:       `{"services":{"media":{"gc":{"status":"processing"}}},` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/CollectMedia", wantReq: &corev1.CollectMediaRequest{Account: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}},
		},
		{
			name: "message garbage collection", method: "PUT", path: "/v1/services/message/gc/", opts: []reqOpt{d360(e.key.Key)},
			reply: &corev1.CollectMessagesResponse{Status: "processing"}, status: 200,
			want:       `{"services":{"message":{"gc":{"status":"processing"}}},` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/CollectMessages", wantReq: &corev1.CollectMessagesRequest{Account: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}},
		},
		{
			name: "providers, masked", method: "GET", path: "/v1/settings/application/media/providers", opts: []reqOpt{bearer(e.admin)},
			reply: providers, status: 200,
			want: `{"settings":{"application":{"media":{"providers":[` +
				`{"name":"cdn","type":"www","config":{"bearer":"********"},"hosts":["cdn.example"]},` +
				`{"name":"files.example","type":"www","config":{"basic":{"username":"uploader","password":"********"}},"hosts":["*.files.example","files.example:8443"]}]}}},` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/GetMediaProviders", wantReq: &corev1.GetMediaProvidersRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}},
		},
		{
			name: "no providers", method: "GET", path: "/v1/settings/application/media/providers", opts: []reqOpt{d360(e.key.Key)},
			status:     200,
			want:       `{"settings":{"application":{"media":{"providers":[]}}},` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/GetMediaProviders", wantReq: &corev1.GetMediaProvidersRequest{Account: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}},
		},
		{
			name: "set providers", method: "POST", path: "/v1/settings/application/media/providers", opts: []reqOpt{bearer(e.admin)},
			body: `[{"name":"cdn","type":"www","hosts":["cdn.example"],"config":{"bearer":"bearer-SECRET-1"}},` +
				`{"name":"files.example","type":"www","config":{"basic":{"username":"uploader","password":"basic-SECRET-2"}},"hosts":["*.files.example","files.example:8443"]}]`,
			reply: providers, status: 200, want: `{` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/SetMediaProviders",
			wantReq:    &corev1.SetMediaProvidersRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, Providers: providers.Providers},
		},
		{
			name: "delete a provider", method: "DELETE", path: "/v1/settings/application/media/providers/files.example", opts: []reqOpt{d360(e.key.Key)},
			status: 200, want: `{` + metaJSON + `}`,
			wantMethod: "/core.v1.Core/DeleteMediaProvider", wantReq: &corev1.DeleteMediaProviderRequest{Account: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}, Name: "files.example"},
		},
		{
			name: "delete an unknown provider", method: "DELETE", path: "/v1/settings/application/media/providers/nope", opts: []reqOpt{bearer(e.admin)},
			fail: status.Error(codes.NotFound, "media provider nope not found"), status: 404, code: 1006, want: "nope not found",
			wantMethod: "/core.v1.Core/DeleteMediaProvider", wantReq: &corev1.DeleteMediaProviderRequest{Account: &corev1.AccountRef{Caller: corev1.Caller_CALLER_ADMIN}, Name: "nope"},
		},
		{
			name: "delete an impossible provider name", method: "DELETE", path: "/v1/settings/application/media/providers/" + strings.Repeat("p", 65), opts: []reqOpt{bearer(e.admin)},
			status: 404, code: 1006, want: "provider not found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.rec.answer(func(string) error { return tt.fail }, func(string) proto.Message { return tt.reply })
			r := e.doJSON(t, tt.method, tt.path, tt.body, tt.opts...)
			if tt.code != 0 {
				wantError(t, r, tt.status, tt.code, tt.want)
			} else if diff := cmp.Diff(tt.want, string(bytes.TrimSpace(r.body))); r.status != tt.status || diff != "" {
				t.Errorf("status %d, want %d; body mismatch (-want +got):\n%s", r.status, tt.status, diff)
			}
			if strings.Contains(string(r.body), "SECRET") {
				t.Errorf("a provider secret was returned: %s", r.body)
			}
			calls := e.rec.taken()
			if tt.wantMethod == "" {
				if len(calls) != 0 {
					t.Errorf("%d coreapp calls, want none", len(calls))
				}
				return
			}
			if len(calls) != 1 || calls[0].method != tt.wantMethod {
				t.Fatalf("calls %+v, want one %s", calls, tt.wantMethod)
			}
			if diff := cmp.Diff(tt.wantReq, calls[0].req, protocmp.Transform()); diff != "" {
				t.Errorf("request mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMediaMessages checks the SendMessage requests built for media types.
func TestMediaMessages(t *testing.T) {
	e := newMediaEnv(t)
	tests := []struct {
		name string
		body string
		want *messagev1.Content
	}{
		{
			name: "image by id, replying",
			body: `{"to":"4915112345678","type":"image","image":{"id":"f81d4fae","caption":"Schön"},"context":{"message_id":"wamid.Q"}}`,
			want: &messagev1.Content{
				Body:    &messagev1.Content_Media{Media: &messagev1.Media{Type: "image", MediaId: "f81d4fae", Caption: "Schön"}},
				Context: &messagev1.ContextInfo{MessageId: "wamid.Q"},
			},
		},
		{
			name: "document by link with a provider",
			body: `{"to":"4915112345678","type":"document","document":{"link":"https://files.example/q3.pdf?sig=1","provider":{"name":"files.example"},"caption":"Q3","filename":"Q3 report.pdf"}}`,
			want: &messagev1.Content{Body: &messagev1.Content_Media{Media: &messagev1.Media{
				Type: "document", Link: "https://files.example/q3.pdf?sig=1", Provider: "files.example", Caption: "Q3", Filename: "Q3 report.pdf",
			}}},
		},
		{
			name: "audio by link",
			body: `{"to":"4915112345678","type":"audio","audio":{"link":"http://cdn.example/a.ogg"},"preview_url":false}`,
			want: &messagev1.Content{Body: &messagev1.Content_Media{Media: &messagev1.Media{Type: "audio", Link: "http://cdn.example/a.ogg"}}},
		},
		{
			name: "video by id",
			body: `{"to":"4915112345678","type":"video","video":{"id":"v1","caption":"` + strings.Repeat("é", 1024) + `"}}`,
			want: &messagev1.Content{Body: &messagev1.Content_Media{Media: &messagev1.Media{Type: "video", MediaId: "v1", Caption: strings.Repeat("é", 1024)}}},
		},
		{
			name: "sticker by id",
			body: `{"to":"4915112345678","type":"sticker","sticker":{"id":"s1"}}`,
			want: &messagev1.Content{Body: &messagev1.Content_Media{Media: &messagev1.Media{Type: "sticker", MediaId: "s1"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.rec.answer(func(string) error { return nil }, func(string) proto.Message { return &corev1.SendMessageResponse{Id: "wamid.M"} })
			r := e.doJSON(t, "POST", "/v1/messages", tt.body, d360(e.key.Key), header("X-Request-Id", "m-1"))
			want := `{"messages":[{"id":"wamid.M"}],"meta":{"api_status":"stable","version":"v2.53.0-openwaba"}}`
			if diff := cmp.Diff(want, string(bytes.TrimSpace(r.body))); r.status != 201 || diff != "" {
				t.Fatalf("status %d, body mismatch (-want +got):\n%s", r.status, diff)
			}
			calls := e.rec.taken()
			if len(calls) != 1 {
				t.Fatalf("%d calls, want 1", len(calls))
			}
			wantReq := &corev1.SendMessageRequest{Account: &corev1.AccountRef{WaId: keyNumber, Caller: corev1.Caller_CALLER_API_KEY}, RequestId: "m-1", To: "4915112345678", RecipientType: "individual", Content: tt.want}
			if diff := cmp.Diff(wantReq, calls[0].req, protocmp.Transform()); diff != "" {
				t.Errorf("request mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMediaErrors covers what the webapp refuses on its own (coreapp is
// unreachable: 503 means the request passed validation).
func TestMediaErrors(t *testing.T) {
	f := newFixture(t)
	admin, alice, key := bearer(f.admin), bearer(f.alice), d360(f.key.Key)
	apikey := header("Authorization", "Apikey "+monitoringKey)
	ct := func(v string) reqOpt { return header("Content-Type", v) }
	msg := func(typ, obj string) string {
		return `{"to":"4915112345678","type":"` + typ + `","` + typ + `":` + obj + `}`
	}
	prov := func(config string) string {
		return `[{"name":"prov","type":"www","hosts":["media.example"],"config":` + config + `}]`
	}
	provs := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf(`{"name":"p%d","type":"www","hosts":["media.example"],"config":{"bearer":"t"}}`, i)
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	long := func(n int) string { return strings.Repeat("a", n) }
	link := "https://cdn.example/" + long(2048-len("https://cdn.example/"))
	const providers = "/v1/settings/application/media/providers"

	tests := []struct {
		name         string
		method, path string
		body         string
		opts         []reqOpt
		status, code int
		details      string
	}{
		// Upload.
		{"upload without credentials", "POST", "/v1/media", "x", []reqOpt{ct("image/png")}, 401, 1005, ""},
		{"upload with the monitoring key", "POST", "/v1/media", "x", []reqOpt{apikey, ct("image/png")}, 401, 1005, "monitoring"},
		{"upload without Content-Type", "POST", "/v1/media", "x", []reqOpt{admin}, 400, 1008, "Content-Type"},
		{"upload of an unaccepted type", "POST", "/v1/media", "x", []reqOpt{admin, ct("image/gif")}, 400, 1009, "image/gif is not accepted"},
		{"upload of octet-stream lists the types", "POST", "/v1/media", "x", []reqOpt{admin, ct("application/octet-stream")}, 400, 1009, "image/jpeg, image/png, image/webp"},
		{"upload with an empty body", "POST", "/v1/media", "", []reqOpt{admin, ct("image/png")}, 400, 1008, "empty upload"},
		{"upload by a user reaches coreapp", "POST", "/v1/media", "x", []reqOpt{alice, ct("image/png")}, 503, 1014, "Coreapp unreachable"},
		{"upload of opus reaches coreapp", "POST", "/v1/media", "x", []reqOpt{key, ct("audio/ogg; codecs=opus")}, 503, 1014, ""},
		{"upload over 1 MiB is not refused as a JSON body", "POST", "/v1/media", long(2 << 20), []reqOpt{admin, ct("video/mp4")}, 503, 1014, ""},
		{"wrong method on /v1/media", "GET", "/v1/media", "", []reqOpt{admin}, 405, 1006, ""},

		// Download, delete, garbage collection.
		{"download reaches coreapp", "GET", "/v1/media/abc", "", []reqOpt{key}, 503, 1014, "Coreapp unreachable"},
		{"delete reaches coreapp", "DELETE", "/v1/media/abc", "", []reqOpt{alice}, 503, 1014, ""},
		{"delete without credentials", "DELETE", "/v1/media/abc", "", nil, 401, 1005, ""},
		{"gc by a user", "PUT", "/v1/services/media/gc", "", []reqOpt{alice}, 403, 1005, "admin"},
		{"gc with a parameter", "PUT", "/v1/services/media/gc", `{"days":3}`, []reqOpt{admin}, 400, 1010, "days"},
		{"gc reaches coreapp", "PUT", "/v1/services/media/gc", "", []reqOpt{key}, 503, 1014, ""},
		{"message gc by a user", "PUT", "/v1/services/message/gc", "", []reqOpt{alice}, 403, 1005, "admin"},
		{"message gc with a parameter", "PUT", "/v1/services/message/gc", `{"days":3}`, []reqOpt{admin}, 400, 1010, "days"},

		// Media providers.
		{"providers read by a user", "GET", providers, "", []reqOpt{alice}, 403, 1005, "admin"},
		{"providers set by a user", "POST", providers, prov(`{"bearer":"t"}`), []reqOpt{alice}, 403, 1005, "admin"},
		{"provider deleted by a user", "DELETE", providers + "/prov", "", []reqOpt{alice}, 403, 1005, "admin"},
		{"providers, empty body", "POST", providers, "", []reqOpt{admin}, 400, 1008, "JSON array"},
		{"providers, an object", "POST", providers, `{"name":"prov"}`, []reqOpt{admin}, 400, 1009, "JSON array"},
		{"providers, null", "POST", providers, `null`, []reqOpt{admin}, 400, 1009, "JSON array"},
		{"providers, malformed", "POST", providers, `[{"name":`, []reqOpt{admin}, 400, 1009, "not valid JSON"},
		{"providers, none", "POST", providers, `[]`, []reqOpt{admin}, 400, 1009, "1 to 20"},
		{"providers, 21", "POST", providers, provs(21), []reqOpt{admin}, 400, 1009, "21"},
		{"providers, not objects", "POST", providers, `[1]`, []reqOpt{admin}, 400, 1009, "providers[0] must be an object"},
		{"provider without name", "POST", providers, `[{"type":"www","config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1008, "providers[0].name"},
		{"provider with an empty name", "POST", providers, `[{"name":"","type":"www","config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1008, "providers[0].name"},
		{"provider name with a space", "POST", providers, `[{"name":"a b","type":"www","config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1009, "providers[0].name"},
		{"provider name of 65", "POST", providers, `[{"name":"` + long(65) + `","type":"www","config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1009, "1 to 64"},
		{"provider name not a string", "POST", providers, `[{"name":7,"type":"www","config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1009, "providers[0].name must be a string"},
		{"provider without type", "POST", providers, `[{"name":"prov","config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1008, "providers[0].type"},
		{"provider of type s3", "POST", providers, `[{"name":"prov","type":"s3","config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1009, `"www"`},
		{"provider without config", "POST", providers, `[{"name":"prov","type":"www"}]`, []reqOpt{admin}, 400, 1008, "providers[0].config"},
		{"provider, empty config", "POST", providers, prov(`{}`), []reqOpt{admin}, 400, 1008, "config.bearer or"},
		{"provider, config not an object", "POST", providers, prov(`"t"`), []reqOpt{admin}, 400, 1009, "config must be an object"},
		{"provider, bearer and basic", "POST", providers, prov(`{"bearer":"t","basic":{"username":"u","password":"p"}}`), []reqOpt{admin}, 400, 1009, "not both"},
		{"provider, empty bearer", "POST", providers, prov(`{"bearer":""}`), []reqOpt{admin}, 400, 1008, "config.bearer"},
		{"provider, bearer not a string", "POST", providers, prov(`{"bearer":1}`), []reqOpt{admin}, 400, 1009, "config.bearer must be a string"},
		{"provider, bearer with a newline", "POST", providers, prov(`{"bearer":"a\nb"}`), []reqOpt{admin}, 400, 1009, "config.bearer"},
		{"provider, bearer too long", "POST", providers, prov(`{"bearer":"` + long(513) + `"}`), []reqOpt{admin}, 400, 1009, "512 bytes"},
		{"provider, basic without password", "POST", providers, prov(`{"basic":{"username":"u"}}`), []reqOpt{admin}, 400, 1008, "config.basic.password"},
		{"provider, basic without username", "POST", providers, prov(`{"basic":{"password":"p"}}`), []reqOpt{admin}, 400, 1008, "config.basic.username"},
		{"provider, basic not an object", "POST", providers, prov(`{"basic":"u:p"}`), []reqOpt{admin}, 400, 1009, "config.basic must be an object"},
		{"provider, username with a colon", "POST", providers, prov(`{"basic":{"username":"u:x","password":"p"}}`), []reqOpt{admin}, 400, 1009, "username"},
		{"provider without hosts", "POST", providers, `[{"name":"prov","type":"www","config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1008, "providers[0].hosts is required"},
		{"provider, empty hosts", "POST", providers, `[{"name":"prov","type":"www","hosts":[],"config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1008, "providers[0].hosts"},
		{"provider, hosts not strings", "POST", providers, `[{"name":"prov","type":"www","hosts":[1],"config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1009, "providers[0].hosts must be an array of strings"},
		{"provider, 21 hosts", "POST", providers, `[{"name":"prov","type":"www","hosts":["a"` + strings.Repeat(`,"a"`, 20) + `],"config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1009, "more than 20"},
		{"provider, empty host", "POST", providers, `[{"name":"prov","type":"www","hosts":[""],"config":{"bearer":"t"}}]`, []reqOpt{admin}, 400, 1009, "providers[0].hosts[0]"},
		{"provider, unknown field", "POST", providers, `[{"name":"prov","type":"www","config":{"bearer":"t"},"scope":"x"}]`, []reqOpt{admin}, 400, 1010, "providers[0].scope"},
		{"provider, unknown config field", "POST", providers, prov(`{"token":"t"}`), []reqOpt{admin}, 400, 1010, "providers[0].config.token"},
		{"provider, unknown basic field", "POST", providers, prov(`{"basic":{"username":"u","password":"p","realm":"r"}}`), []reqOpt{admin}, 400, 1010, "config.basic.realm"},
		{"providers, a name twice", "POST", providers, `[{"name":"p","type":"www","hosts":["a.example"],"config":{"bearer":"t"}},{"name":"p","type":"www","hosts":["a.example"],"config":{"bearer":"u"}}]`, []reqOpt{admin}, 400, 1009, "twice"},
		{"the second provider is checked", "POST", providers, `[{"name":"p","type":"www","hosts":["a.example"],"config":{"bearer":"t"}},{"name":"q","type":"www"}]`, []reqOpt{admin}, 400, 1008, "providers[1].config"},
		{"20 providers reach coreapp", "POST", providers, provs(20), []reqOpt{key}, 503, 1014, ""},
		{"basic provider reaches coreapp", "POST", providers, prov(`{"basic":{"username":"u","password":"p: é"}}`), []reqOpt{admin}, 503, 1014, ""},
		{"providers read reaches coreapp", "GET", providers, "", []reqOpt{key}, 503, 1014, ""},
		{"provider delete reaches coreapp", "DELETE", providers + "/prov", "", []reqOpt{admin}, 503, 1014, ""},

		// Media messages.
		{"image without its object", "POST", "/v1/messages", `{"to":"4915112345678","type":"image"}`, []reqOpt{admin}, 400, 1008, "image is required"},
		{"image not an object", "POST", "/v1/messages", msg("image", `"f81d"`), []reqOpt{admin}, 400, 1009, "image must be an object"},
		{"image without id or link", "POST", "/v1/messages", msg("image", `{}`), []reqOpt{admin}, 400, 1008, "image.id or image.link"},
		{"image with an empty id", "POST", "/v1/messages", msg("image", `{"id":""}`), []reqOpt{admin}, 400, 1008, "image.id or image.link"},
		{"image with id and link", "POST", "/v1/messages", msg("image", `{"id":"x","link":"https://a.example/i.jpg"}`), []reqOpt{admin}, 400, 1009, "not both"},
		{"image id not a string", "POST", "/v1/messages", msg("image", `{"id":7}`), []reqOpt{admin}, 400, 1009, "image.id must be a string"},
		{"image id too long", "POST", "/v1/messages", msg("image", `{"id":"`+long(257)+`"}`), []reqOpt{admin}, 400, 1009, "image.id"},
		{"image id with a space", "POST", "/v1/messages", msg("image", `{"id":"a b"}`), []reqOpt{admin}, 400, 1009, "image.id"},
		{"image link ftp", "POST", "/v1/messages", msg("image", `{"link":"ftp://a.example/i.jpg"}`), []reqOpt{admin}, 400, 1009, "image.link"},
		{"image link relative", "POST", "/v1/messages", msg("image", `{"link":"/i.jpg"}`), []reqOpt{admin}, 400, 1009, "image.link"},
		{"image link without host", "POST", "/v1/messages", msg("image", `{"link":"https:///i.jpg"}`), []reqOpt{admin}, 400, 1009, "image.link"},
		{"image link too long", "POST", "/v1/messages", msg("image", `{"link":"`+link+`a"}`), []reqOpt{admin}, 400, 1009, "2048"},
		{"image link of 2048 reaches coreapp", "POST", "/v1/messages", msg("image", `{"link":"`+link+`"}`), []reqOpt{admin}, 503, 1014, ""},
		{"image caption too long", "POST", "/v1/messages", msg("image", `{"id":"x","caption":"`+strings.Repeat("é", 1025)+`"}`), []reqOpt{admin}, 400, 1009, "1025"},
		{"image caption not a string", "POST", "/v1/messages", msg("image", `{"id":"x","caption":1}`), []reqOpt{admin}, 400, 1009, "image.caption must be a string"},
		{"image with a filename", "POST", "/v1/messages", msg("image", `{"id":"x","filename":"a.jpg"}`), []reqOpt{admin}, 400, 1010, "image.filename"},
		{"image with an unknown field", "POST", "/v1/messages", msg("image", `{"id":"x","url":"y"}`), []reqOpt{admin}, 400, 1010, "image.url"},
		{"video with a filename", "POST", "/v1/messages", msg("video", `{"id":"x","filename":"a.mp4"}`), []reqOpt{admin}, 400, 1010, "video.filename"},
		{"audio with a caption", "POST", "/v1/messages", msg("audio", `{"id":"x","caption":"hi"}`), []reqOpt{admin}, 400, 1010, "audio.caption"},
		{"sticker with a caption", "POST", "/v1/messages", msg("sticker", `{"id":"x","caption":"hi"}`), []reqOpt{admin}, 400, 1010, "sticker.caption"},
		{"sticker with a filename", "POST", "/v1/messages", msg("sticker", `{"id":"x","filename":"s.webp"}`), []reqOpt{admin}, 400, 1010, "sticker.filename"},
		{"document filename with a slash", "POST", "/v1/messages", msg("document", `{"id":"x","filename":"../etc/passwd"}`), []reqOpt{admin}, 400, 1009, "document.filename"},
		{"document filename with a backslash", "POST", "/v1/messages", msg("document", `{"id":"x","filename":"a\\b.pdf"}`), []reqOpt{admin}, 400, 1009, "path separators"},
		{"document filename too long", "POST", "/v1/messages", msg("document", `{"id":"x","filename":"`+strings.Repeat("é", 241)+`"}`), []reqOpt{admin}, 400, 1009, "240"},
		{"document filename not a string", "POST", "/v1/messages", msg("document", `{"id":"x","filename":true}`), []reqOpt{admin}, 400, 1009, "document.filename must be a string"},
		{"document with all fields reaches coreapp", "POST", "/v1/messages", msg("document", `{"link":"https://a.example/r.pdf","provider":{"name":"prov"},"caption":"`+strings.Repeat("é", 1024)+`","filename":"`+strings.Repeat("é", 240)+`"}`), []reqOpt{key}, 503, 1014, ""},
		{"provider with an id", "POST", "/v1/messages", msg("image", `{"id":"x","provider":{"name":"prov"}}`), []reqOpt{admin}, 400, 1010, "image.provider"},
		{"provider not an object", "POST", "/v1/messages", msg("image", `{"link":"https://a.example/i.jpg","provider":"prov"}`), []reqOpt{admin}, 400, 1009, "image.provider must be an object"},
		{"provider without name", "POST", "/v1/messages", msg("image", `{"link":"https://a.example/i.jpg","provider":{}}`), []reqOpt{admin}, 400, 1008, "image.provider.name"},
		{"provider with a bad name", "POST", "/v1/messages", msg("image", `{"link":"https://a.example/i.jpg","provider":{"name":"a/b"}}`), []reqOpt{admin}, 400, 1009, "image.provider.name"},
		{"provider with an unknown field", "POST", "/v1/messages", msg("image", `{"link":"https://a.example/i.jpg","provider":{"name":"p","type":"www"}}`), []reqOpt{admin}, 400, 1010, "image.provider.type"},
		{"image object with type video", "POST", "/v1/messages", `{"to":"4915112345678","type":"video","video":{"id":"x"},"image":{"id":"x"}}`, []reqOpt{admin}, 400, 1010, "image"},
		{"text object with type image", "POST", "/v1/messages", `{"to":"4915112345678","type":"image","image":{"id":"x"},"text":{"body":"hi"}}`, []reqOpt{admin}, 400, 1010, "text"},
		{"image with a non-boolean preview_url", "POST", "/v1/messages", `{"to":"4915112345678","type":"image","image":{"id":"x"},"preview_url":"no"}`, []reqOpt{admin}, 400, 1009, "preview_url"},
		{"image with an empty context", "POST", "/v1/messages", `{"to":"4915112345678","type":"image","image":{"id":"x"},"context":{}}`, []reqOpt{admin}, 400, 1008, "context.message_id"},
		{"location without coordinates", "POST", "/v1/messages", `{"to":"4915112345678","type":"location","location":{}}`, []reqOpt{admin}, 400, 1008, "location.latitude is required"},
		{"contacts without cards", "POST", "/v1/messages", `{"to":"4915112345678","type":"contacts"}`, []reqOpt{admin}, 400, 1008, "contacts is required"},
		{"template header image without id or link", "POST", "/v1/messages", `{"to":"4915112345678","type":"template","template":{"namespace":"n","name":"x","language":{"policy":"deterministic","code":"en"},"components":[{"type":"header","parameters":[{"type":"image","image":{}}]}]}}`, []reqOpt{admin}, 400, 1008, ""},
		{"interactive without its object", "POST", "/v1/messages", `{"to":"4915112345678","type":"interactive"}`, []reqOpt{admin}, 400, 1008, "interactive is required"},
		{"interactive product", "POST", "/v1/messages", `{"to":"4915112345678","type":"interactive","interactive":{"type":"product","body":{"text":"x"},"action":{}}}`, []reqOpt{admin}, 400, 1009, "catalog"},
		{"reaction without its object", "POST", "/v1/messages", `{"to":"4915112345678","type":"reaction"}`, []reqOpt{admin}, 400, 1008, "reaction is required"},
		{"location reaches coreapp", "POST", "/v1/messages", `{"to":"4915112345678","type":"location","location":{"latitude":1,"longitude":2}}`, []reqOpt{admin}, 503, 1014, ""},
		{"sticker by a user reaches coreapp", "POST", "/v1/messages", msg("sticker", `{"id":"x"}`), []reqOpt{alice}, 503, 1014, ""},
		{"audio by link reaches coreapp", "POST", "/v1/messages", msg("audio", `{"link":"http://a.example/a.ogg"}`), []reqOpt{admin}, 503, 1014, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.doJSON(t, tt.method, tt.path, tt.body, tt.opts...)
			wantError(t, r, tt.status, tt.code, tt.details)
		})
	}
}
