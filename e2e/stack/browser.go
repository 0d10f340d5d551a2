package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser is a real headless Chromium driven over the DevTools protocol
// (chromedp). It records every console error, uncaught exception and
// error log entry (a failed load, a CSP violation) of its pages.
type Browser struct {
	t   testing.TB
	ctx context.Context

	mu   sync.Mutex
	errs []string
}

// ChromiumPath finds the browser: $WA_CHROMIUM, else Debian's chromium on
// PATH. Outside CI a missing browser skips the test; in CI it fails it
// (.ci/run installs the package).
func ChromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("WA_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH (apt-get install chromium, or set WA_CHROMIUM)")
	}
	t.Skip("no chromium on PATH (apt-get install chromium, or set WA_CHROMIUM)")
	return ""
}

// NewBrowser starts Chromium with a fresh profile and a window of width ×
// height; it stops with the test.
func NewBrowser(t testing.TB, width, height int) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{t: t, ctx: ctx}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Listen(ctx, b.event); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *Browser) event(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			if a.Value != nil {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		msg = "console." + string(ev.Type) + ": " + strings.Join(parts, " ")
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg = "uncaught: " + d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level != log.EntryLevelError {
			return
		}
		msg = fmt.Sprintf("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	b.mu.Lock()
	b.errs = append(b.errs, msg)
	b.mu.Unlock()
}

// Errors returns the console errors so far.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// Do runs steps, failing the test on an error (within a minute).
func (b *Browser) Do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v (console errors: %q)", err, b.Errors())
	}
}

// Eval evaluates a JavaScript expression and decodes its JSON value into
// out (nil: ignore it).
func (b *Browser) Eval(expr string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("browser: %s = %s: %v", expr, raw, err)
		}
	}
}

// Wait polls a JavaScript expression until it is truthy, failing the test
// after within; the truthy value is decoded into out (nil: ignore it).
func (b *Browser) Wait(within time.Duration, what, expr string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Poll[[]byte](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(within)))
	if err != nil {
		var page string
		{
			pctx, pcancel := context.WithTimeout(b.ctx, 5*time.Second)
			page, _ = chromedp.Run(pctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(-3000)`))
			pcancel()
		}
		b.t.Fatalf("browser: waiting for %s (%s): %v\npage: %s\nconsole errors: %q", what, expr, err, page, b.Errors())
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("browser: %s = %s: %v", what, raw, err)
		}
	}
}

// Screenshot returns a PNG of the element matching a CSS selector.
func (b *Browser) Screenshot(sel string) []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: screenshot of %s: %v", sel, err)
	}
	return png
}
