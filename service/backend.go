package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// backend is an HTTP service behind some tools.
type backend struct {
	name     string // for messages: "vault", "legal research"
	env      string // the setting of its URL, for messages
	base     *url.URL
	baseErr  error // the URL is set but not valid
	apiKey   string
	client   *http.Client
	timeout  time.Duration
	maxBytes int
	log      *slog.Logger
}

func newBackend(name, env, rawURL, apiKey string, cfg Config) *backend {
	b := &backend{name: name, env: env, apiKey: apiKey, client: cfg.HTTPClient, timeout: cfg.Timeout, maxBytes: cfg.MaxResponseBytes, log: cfg.Logger}
	if rawURL != "" {
		b.base, b.baseErr = parseBaseURL(rawURL)
	}
	return b
}

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// ready refuses the call when the backend is not configured.
func (b *backend) ready(tool string) error {
	switch {
	case b.baseErr != nil:
		return refuse(ErrNotConfigured, "%s is not configured on this server: %s is not a valid URL", tool, b.env)
	case b.base == nil:
		return refuse(ErrNotConfigured, "%s is not configured on this server: set %s", tool, b.env)
	}
	return nil
}

// BackendError is a backend's answer with a status other than 2xx.
type BackendError struct {
	Backend string // "vault" or "legal research"
	Method  string
	Path    string // the URL path, without host or query
	Status  int
	Body    string // the start of the answer
}

func (e *BackendError) Error() string {
	msg := fmt.Sprintf("%s backend: %s %s answered %d %s", e.Backend, e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// answer is a backend's 2xx answer.
type answer struct {
	body        []byte
	truncated   bool // the answer was longer than maxBytes
	contentType string
}

// do makes one call: method on the base URL plus path, with a JSON body if
// in is not nil, inside the backend's timeout.
func (b *backend) do(ctx context.Context, runID, method, path string, in any) (*answer, error) {
	// path is escaped (ids go through url.PathEscape): an id can never
	// climb out of its place in the path.
	u := *b.base
	u.RawPath = b.base.EscapedPath() + path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("%s backend: bad path %q: %w", b.name, path, err)
	}
	u.Path = p
	display := u.EscapedPath()
	if display == "" {
		display = "/"
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s backend: %s %s: %w", b.name, method, display, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, text/plain;q=0.9, */*;q=0.8")
	req.Header.Set("User-Agent", "oneshot")
	if runID != "" {
		req.Header.Set("X-Oneshot-Run-Id", runID)
	}
	if b.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+b.apiKey)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return nil, fmt.Errorf("%s backend: %s %s: no answer within %s", b.name, method, display, b.timeout)
		}
		// The error names the backend's address: log it for the operator,
		// keep it out of the model's view.
		b.log.Warn("backend call failed", "backend", b.name, "method", method, "path", display, "err", err)
		var dnsErr *net.DNSError
		var opErr *net.OpError
		var urlErr *url.Error
		switch {
		case errors.As(err, &dnsErr):
			err = errors.New("cannot resolve the backend's host name")
		case errors.As(err, &opErr):
			err = fmt.Errorf("cannot reach the backend: %w", opErr.Err)
		case errors.As(err, &urlErr):
			err = urlErr.Err
		}
		return nil, fmt.Errorf("%s backend: %s %s: %w", b.name, method, display, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(b.maxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("%s backend: %s %s: reading the answer: %w", b.name, method, display, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &BackendError{Backend: b.name, Method: method, Path: display, Status: resp.StatusCode, Body: snippet(data)}
	}
	a := &answer{body: data, contentType: resp.Header.Get("Content-Type")}
	if len(data) > b.maxBytes {
		a.body, a.truncated = data[:b.maxBytes], true
	}
	return a, nil
}

// snippet is the start of an error answer, on one line.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}
