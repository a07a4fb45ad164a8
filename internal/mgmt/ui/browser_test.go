package ui_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// shotsEnv names a directory where TestBrowser also leaves a full-page
// screenshot of every page, to look at the UI after changing it.
const shotsEnv = "WARREN_UI_SCREENSHOTS"

// stepTimeout bounds each step of a browser test, so that a page that
// never shows what a step waits for fails the test rather than hangs it.
const stepTimeout = 15 * time.Second

// browser is a headless Chromium tab with what it reported of the page's
// script errors.
type browser struct {
	tab    context.Context // the tab's chromedp context: the browser lives as long as it
	mu     sync.Mutex
	errors []string
}

// run runs one action on the tab within stepTimeout and returns its value.
func run[T any](b *browser, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.tab, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// startBrowser starts a headless Chromium at 1280x800; cleanup closes it
// and waits for its process and goroutines to end.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the web UI test needs a browser: %v; install Debian's chromium package (apt-get install --no-install-recommends chromium, listed in scripts/deps/ui.txt)", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // tests run as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		if err := chromedp.Cancel(tabCtx); err != nil {
			t.Logf("close browser: %v", err)
		}
		cancelTab()
		cancelAlloc()
	})
	b := &browser{tab: tabCtx}
	// Listen starts the browser, bound to the tab's context rather than
	// to one step's.
	err := chromedp.Listen(tabCtx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.errors = append(b.errors, exceptionText(ev.ExceptionDetails))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				b.errors = append(b.errors, "console.error: "+argsText(ev.Args))
			}
		}
	})
	if err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	if _, err := run(b, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("set the viewport: %v", err)
	}
	return b
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "exception"
	}
	text := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		text += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d:%d)", text, d.URL, d.LineNumber+1, d.ColumnNumber+1)
}

func argsText(args []*runtime.RemoteObject) string {
	var parts []string
	for _, a := range args {
		if a.Description != "" {
			parts = append(parts, a.Description)
		} else {
			parts = append(parts, string(a.Value))
		}
	}
	return strings.Join(parts, " ")
}

// do runs actions, failing the test with what step was meant on error.
func (b *browser) do(t *testing.T, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v; the page shows:\n%s", step, err, b.pageText())
	}
}

// pageText is the text the page shows, for failure messages.
func (b *browser) pageText() string {
	text, err := run(b, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	return text
}

// waitTrue waits until the JavaScript expression is true.
func (b *browser) waitTrue(t *testing.T, step, expr string) {
	t.Helper()
	if _, err := run(b, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("%s: %v; the page shows:\n%s", step, err, b.pageText())
	}
}

// text returns the text of the first element matching a CSS selector,
// shown or not.
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	s, err := run(b, chromedp.Evaluate[string](`document.querySelector(`+strconv.Quote(sel)+`)?.textContent ?? ''`))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// value returns the value of the form control a CSS selector finds.
func (b *browser) value(t *testing.T, sel string) string {
	t.Helper()
	s, err := run(b, chromedp.Evaluate[string](`document.querySelector(`+strconv.Quote(sel)+`)?.value ?? ''`))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// screenshot writes the viewport as a PNG file and checks it decodes.
func (b *browser) screenshot(t *testing.T, path string) {
	t.Helper()
	shot, err := run(b, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil || len(shot) == 0 {
		t.Fatalf("screenshot is not a PNG (%d bytes): %v", len(shot), err)
	}
	if cfg.Width < 1000 || cfg.Height < 600 {
		t.Errorf("screenshot is %dx%d, want the 1280x800 viewport", cfg.Width, cfg.Height)
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("screenshot %s is empty or missing: %v", path, err)
	}
	t.Logf("screenshot: %s", path)
}

// keepShot writes a full-page screenshot to the directory shotsEnv
// names, if it names one.
func (b *browser) keepShot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv(shotsEnv)
	if dir == "" {
		return
	}
	shot, err := run(b, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
}

// setFilter replaces what the list's name filter holds, as typing does.
func (b *browser) setFilter(t *testing.T, text string) {
	t.Helper()
	b.do(t, fmt.Sprintf("filter the list by %q", text), chromedp.Evaluate[chromedp.Void](
		`{ const f = document.querySelector('main .pager input.filter'); f.value = `+strconv.Quote(text)+`; f.dispatchEvent(new Event('input')) }`))
}

// setPageSize chooses how many rows a page of the list shows.
func (b *browser) setPageSize(t *testing.T, size int) {
	t.Helper()
	b.do(t, fmt.Sprintf("show %d a page", size), chromedp.Evaluate[chromedp.Void](
		fmt.Sprintf(`{ const s = document.querySelector('main select[name=page_size]'); s.value = '%d'; s.dispatchEvent(new Event('change')) }`, size)))
}

// listShows is a JavaScript expression true when the paged list shows
// rows rows and says range about them.
func listShows(rows int, rangeText string) string {
	return fmt.Sprintf(`document.querySelectorAll('main table.grid tbody tr').length === %d && document.querySelector('main .pager .range')?.textContent === %s`,
		rows, strconv.Quote(rangeText))
}

func (b *browser) scriptErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// TestBrowser drives the UI in headless Chromium as a person would: a
// refused and an accepted sign-in, a queue made with the form, a message
// published to it with the form, its count seen going to 1, and every
// page opened without a script error.
func TestBrowser(t *testing.T) {
	n := startNode(t)
	// More queues than a page of the list holds. Their names sort after
	// the queue the form makes, which so stays on the first page.
	const bulk = 150
	queueCalls(t, n, http.MethodPut, queueNames("work-%03d", 0, bulk-1))
	b := startBrowser(t)
	dir := t.TempDir()
	const queue = "ui-orders"

	b.do(t, "open the UI", chromedp.Navigate(n.url+"/"), chromedp.WaitVisible(chromedp.ID("login-username")))
	b.do(t, "sign in with a wrong password",
		chromedp.SendKeys(chromedp.ID("login-username"), "guest"),
		chromedp.SendKeys(chromedp.ID("login-password"), "wrong"),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("login-error")))
	if got := b.text(t, "#login-error"); !strings.Contains(got, "Login failed") {
		t.Errorf("wrong password: the page says %q, want the API's reason", got)
	}

	b.do(t, "sign in",
		chromedp.SetValue(chromedp.ID("login-username"), "guest"),
		chromedp.SetValue(chromedp.ID("login-password"), "guest"),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("total-queues")))
	if got := b.text(t, "#user-info"); !strings.Contains(got, "guest") {
		t.Errorf("header shows user %q", got)
	}

	b.do(t, "add a queue with the form",
		chromedp.Click(chromedp.CSS(`#nav a[data-tab=queues]`)),
		chromedp.WaitVisible(chromedp.CSS(`#add-queue input[name=name]`)),
		chromedp.SendKeys(chromedp.CSS(`#add-queue input[name=name]`), queue),
		chromedp.Click(chromedp.CSS(`#add-queue button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="#/queues/%2F/`+queue+`"]`)))
	if _, _, ok := n.srv.Queue("/", queue); !ok {
		t.Fatalf("the form did not declare queue %s", queue)
	}
	b.waitTrue(t, "the list shows the new queue empty", `document.querySelector('[data-messages="`+queue+`"]')?.textContent === '0'`)

	b.do(t, "publish a message to the queue with the form",
		chromedp.Click(chromedp.CSS(`a[href="#/queues/%2F/`+queue+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#publish-message textarea[name=payload]`)),
		chromedp.SendKeys(chromedp.CSS(`#publish-message textarea[name=payload]`), "hello from the browser"),
		chromedp.Click(chromedp.CSS(`#publish-message button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#publish-message .status.ok`)))
	b.waitTrue(t, "the queue page counts the message", `document.querySelector('#queue-details [data-field="messages"]')?.textContent === '1'`)
	if q, _, _ := n.srv.Queue("/", queue); q.Stats.Ready != 1 {
		t.Errorf("the broker has %d ready messages in %s, want 1", q.Stats.Ready, queue)
	}

	b.do(t, "back to the queue list", chromedp.Click(chromedp.CSS(`#nav a[data-tab=queues]`)))
	b.waitTrue(t, "the queue list counts the message", `document.querySelector('[data-messages="`+queue+`"]')?.textContent === '1'`)

	// The list shows a page of 100 queues at a time, by name.
	all := bulk + 1
	b.waitTrue(t, "the list shows the first page", listShows(100, fmt.Sprintf("Showing 1–100 of %d", all)))
	b.screenshot(t, filepath.Join(dir, "queues.png"))
	b.keepShot(t, "queues")
	b.do(t, "go to the next page", chromedp.Click(chromedp.CSS(`main .pager button.next`)))
	second := fmt.Sprintf("Showing 101–%d of %d", all, all)
	b.waitTrue(t, "the list shows the rest", listShows(all-100, second)+
		` && document.querySelector('a[href="#/queues/%2F/work-149"]') !== null`+
		` && document.querySelector('a[href="#/queues/%2F/`+queue+`"]') === null`)

	// The automatic refresh leaves what is being typed alone, and the
	// page of the list.
	b.do(t, "type a name into the form", chromedp.SendKeys(chromedp.CSS(`#add-queue input[name=name]`), "half-typed"))
	updated := b.text(t, "#updated")
	b.waitTrue(t, "wait for the automatic refresh", `document.getElementById('updated').textContent !== `+strconv.Quote(updated))
	if got := b.value(t, `#add-queue input[name=name]`); got != "half-typed" {
		t.Errorf("after a refresh the form holds %q, want what was typed", got)
	}
	if got := b.text(t, "main .pager .range"); got != second {
		t.Errorf("after a refresh the list says %q, want %q", got, second)
	}
	b.keepShot(t, "queues-page-2")

	// The name filter asks the node for matching names, by substring or
	// by regular expression; a bad expression says what is wrong with it.
	b.setFilter(t, "work-14")
	b.waitTrue(t, "the filter narrows the list", listShows(10, fmt.Sprintf("Showing 1–10 of 10 (filtered from %d)", all)))
	b.do(t, "filter by regular expression", chromedp.Click(chromedp.CSS(`main .pager input[name=use_regex]`)))
	b.setFilter(t, "^(ui|work-00)")
	b.waitTrue(t, "the expression narrows the list", listShows(11, fmt.Sprintf("Showing 1–11 of 11 (filtered from %d)", all)))
	b.setFilter(t, "work-(")
	b.waitTrue(t, "a bad expression is explained", `document.querySelector('main .filter-error:not([hidden])')?.textContent.includes('invalid regular expression') === true`)
	if banner := b.text(t, "#refresh-error"); banner != "" {
		t.Errorf("a bad filter broke the page: %s", banner)
	}
	b.keepShot(t, "queues-bad-filter")
	b.do(t, "filter by substring again", chromedp.Click(chromedp.CSS(`main .pager input[name=use_regex]`)))
	b.setFilter(t, "")
	b.setPageSize(t, 500)
	b.waitTrue(t, "the list shows every queue", listShows(all, fmt.Sprintf("Showing 1–%d of %d", all, all)))

	// A page that is gone by the time it is asked for gives way to the
	// last one there is.
	b.setPageSize(t, 100)
	b.waitTrue(t, "the list shows the first page again", listShows(100, fmt.Sprintf("Showing 1–100 of %d", all)))
	queueCalls(t, n, http.MethodDelete, queueNames("work-%03d", 99, bulk-1))
	b.do(t, "go to a next page that is gone", chromedp.Click(chromedp.CSS(`main .pager button.next`)))
	b.waitTrue(t, "the list shows the page there is", listShows(100, "Showing 1–100 of 100")+
		` && document.querySelector('main .pager .pages').hidden`)
	b.do(t, "open the queue again", chromedp.Click(chromedp.CSS(`a[href="#/queues/%2F/`+queue+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#get-messages button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`#get-messages button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.message .payload`)))
	if got := b.text(t, ".message .payload"); got != "hello from the browser" {
		t.Errorf("got message %q back", got)
	}
	b.keepShot(t, "queue")

	// Every other page opens and loads its data without an error.
	for _, p := range []struct{ name, hash, ready string }{
		{"overview", "#/", "#rates-chart"},
		{"nodes", "#/nodes", "main .gauge"},
		{"connections", "#/connections", "main table.grid"},
		{"channels", "#/channels", "main table.grid"},
		{"exchanges", "#/exchanges", "#add-exchange"},
		{"exchange", "#/exchanges/%2F/amq.direct", "#publish-message"},
		{"users", "#/admin/users", "#user-form"},
		{"vhosts", "#/admin/vhosts", "#vhost-form"},
		{"permissions", "#/admin/permissions", "#permission-form"},
		{"policies", "#/admin/policies", "#policy-form"},
	} {
		b.do(t, "open "+p.hash,
			chromedp.Evaluate[chromedp.Void](`location.hash = `+strconv.Quote(p.hash)),
			chromedp.WaitVisible(chromedp.CSS(p.ready)))
		b.waitTrue(t, "load "+p.hash, `document.getElementById('updated').textContent !== ''`)
		if banner := b.text(t, "#refresh-error"); banner != "" {
			t.Errorf("%s: %s", p.hash, banner)
		}
		b.keepShot(t, p.name)
	}

	// The policy form shows the API's reason for a refusal, then saves a
	// good policy, which the list shows.
	b.do(t, "submit a policy the node refuses",
		chromedp.SendKeys(chromedp.CSS(`#policy-form input[name=name]`), "ui-limit"),
		chromedp.SendKeys(chromedp.CSS(`#policy-form input[name=pattern]`), "^ui-"),
		chromedp.SendKeys(chromedp.CSS(`#policy-form textarea[name=definition]`), "no-such-key = 10"),
		chromedp.Click(chromedp.CSS(`#policy-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#policy-form .status.error`)))
	if status := b.text(t, "#policy-form .status"); !strings.Contains(status, "not recognised") {
		t.Errorf("the refused policy form says %q, want the API's reason", status)
	}
	b.do(t, "submit a good policy",
		chromedp.SetValue(chromedp.CSS(`#policy-form textarea[name=definition]`), "max-length = 10"),
		chromedp.Click(chromedp.CSS(`#policy-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#policy-form .status.ok`)))
	b.waitTrue(t, "the list shows the policy", `[...document.querySelectorAll('main table.grid td')].some((td) => td.textContent === 'ui-limit')`)
	b.keepShot(t, "policy-saved")

	// A client's connection closes from its row, with the UI's reason.
	conn, err := amqp091.Dial(n.amqp)
	if err != nil {
		t.Fatalf("connect a client: %v", err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	b.do(t, "close the connection from the UI",
		chromedp.Evaluate[chromedp.Void](`location.hash = '#/connections'; window.confirm = () => true`),
		chromedp.Click(chromedp.CSS(`main table.grid button.danger`)))
	select {
	case e := <-closed:
		if e == nil || !strings.Contains(e.Reason, "management UI") {
			t.Errorf("the connection closed with %v, want the UI's reason", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not close")
	}
	b.waitTrue(t, "the list drops the connection", `document.querySelector('main td.empty') !== null`)

	// A user with fewer tags is told what it may not see, and stays
	// signed in. The user is made with the admin form.
	b.do(t, "add a management user",
		chromedp.Evaluate[chromedp.Void](`location.hash = '#/admin/users'`),
		chromedp.WaitVisible(chromedp.CSS(`#user-form input[name=name]`)),
		chromedp.SendKeys(chromedp.CSS(`#user-form input[name=name]`), "watcher"),
		chromedp.SendKeys(chromedp.CSS(`#user-form input[name=password]`), "watcher-pw"),
		chromedp.SendKeys(chromedp.CSS(`#user-form input[name=tags]`), "management"),
		chromedp.Click(chromedp.CSS(`#user-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#user-form .status.ok`)))
	if u, ok := n.srv.Meta().User("watcher"); !ok || strings.Join(u.Tags, ",") != "management" {
		t.Fatalf("the user form made %+v (found %v)", u, ok)
	}
	b.do(t, "sign in as the management user",
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("login-username")),
		chromedp.Evaluate[chromedp.Void](`location.hash = '#/'`),
		chromedp.SendKeys(chromedp.ID("login-username"), "watcher"),
		chromedp.SendKeys(chromedp.ID("login-password"), "watcher-pw"),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("total-queues")))
	hidden, err := run(b, chromedp.Evaluate[bool](`document.querySelector('#nav a[data-tab=admin]').hidden && document.querySelector('#nav a[data-tab=nodes]').hidden`))
	if err != nil || !hidden {
		t.Errorf("the management user sees the admin or nodes tab (%v)", err)
	}
	b.do(t, "open a page the user may not see", chromedp.Evaluate[chromedp.Void](`location.hash = '#/nodes'`))
	b.waitTrue(t, "the page says why", `document.getElementById('refresh-error').textContent.includes('Not administrator user')`)
	if !strings.Contains(b.text(t, "#user-info"), "watcher") {
		t.Errorf("the refused page signed the user out")
	}

	if errs := b.scriptErrors(); len(errs) > 0 {
		t.Errorf("the page reported script errors:\n%s", strings.Join(errs, "\n"))
	}
}

// queueNames names queues format (taking a number) from first to last.
func queueNames(format string, first, last int) []string {
	var names []string
	for i := first; i <= last; i++ {
		names = append(names, fmt.Sprintf(format, i))
	}
	return names
}

// queueCalls sends method (PUT declares a durable queue, DELETE deletes)
// to each named queue in vhost / as guest, a few at a time.
func queueCalls(t *testing.T, n *node, method string, names []string) {
	t.Helper()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: stepTimeout}
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 4 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(names); i = int(next.Add(1)) - 1 {
				if err := queueCall(client, method, n.url, names[i]); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatalf("%s queues: %v", method, first)
	}
}

func queueCall(client *http.Client, method, base, name string) error {
	var body io.Reader
	if method == http.MethodPut {
		body = strings.NewReader(`{"durable":true}`)
	}
	req, err := http.NewRequest(method, base+"/api/queues/%2F/"+url.PathEscape(name), body)
	if err != nil {
		return err
	}
	req.SetBasicAuth("guest", "guest")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("%s queue %s: status %d", method, name, resp.StatusCode)
	}
	return nil
}
