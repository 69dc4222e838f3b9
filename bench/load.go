package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Load describes the requests to send.
type Load struct {
	// Clients send requests concurrently, each one after the other.
	Clients int
	// Requests bounds the total count; Duration bounds the time. The first
	// reached ends the load. At least one must be set.
	Requests int
	Duration time.Duration
	// Legacy sends agentRuntime: true (202 at once) instead of sync requests.
	Legacy bool
	// Body returns the i-th request's body. Default: builtin/echo.
	Body func(i int) string
	// Timeout bounds one request. Default 2 minutes.
	Timeout time.Duration
}

// Outcome is what the API answered.
type Outcome struct {
	Sent      int
	Accepted  []string    // run ids of 200/202 answers
	ByStatus  map[int]int // HTTP status -> count (0: no answer)
	Errors    []string    // a sample of error answers and transport errors
	Latencies []time.Duration
	Elapsed   time.Duration
	// MaxLatency of the requests that got no accepted answer: how long a
	// refused or failed request made its client wait.
	MaxRefusedLatency time.Duration
}

// Throughput is answered requests per second.
func (o *Outcome) Throughput() float64 {
	return float64(len(o.Latencies)) / o.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0-100) of the latencies of
// accepted requests.
func (o *Outcome) Percentile(p float64) time.Duration {
	if len(o.Latencies) == 0 {
		return 0
	}
	l := slices.Clone(o.Latencies)
	slices.Sort(l)
	return l[min(len(l)-1, int(float64(len(l))*p/100))]
}

// EchoBody is a builtin/echo request.
func EchoBody(i int) string {
	return fmt.Sprintf(`{"prompt":"request %d","model":"builtin/echo"}`, i)
}

// SleepBody is a builtin/script request whose run sleeps in its sandbox, so
// that runs are in flight when a fault hits.
func SleepBody(d time.Duration) func(i int) string {
	return func(i int) string {
		script := fmt.Sprintf(`{"script":[{"tool":"bash","input":{"command":"sleep %g; echo done %d"}},{"text":"{{last}}"}]}`, d.Seconds(), i)
		b, _ := json.Marshal(map[string]any{"prompt": script, "model": "builtin/script", "enabledTools": []string{"bash"}})
		return string(b)
	}
}

// Drive sends the load and collects the answers.
func (c *Cluster) Drive(ctx context.Context, l Load) *Outcome {
	if l.Body == nil {
		l.Body = EchoBody
	}
	if l.Timeout == 0 {
		l.Timeout = 2 * time.Minute
	}
	client := &http.Client{Timeout: l.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: l.Clients}}
	defer client.CloseIdleConnections()
	out := &Outcome{ByStatus: map[int]int{}}
	var mu sync.Mutex
	var next int
	var end time.Time
	if l.Duration > 0 {
		end = time.Now().Add(l.Duration)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range l.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if (l.Requests > 0 && i >= l.Requests) || (!end.IsZero() && time.Now().After(end)) {
					return
				}
				t0 := time.Now()
				status, runID, errText := c.execute(ctx, client, l.Body(i), l.Legacy)
				d := time.Since(t0)
				mu.Lock()
				out.Sent++
				out.ByStatus[status]++
				if runID != "" && (status == http.StatusOK || status == http.StatusAccepted) {
					out.Accepted = append(out.Accepted, runID)
					out.Latencies = append(out.Latencies, d)
				} else {
					out.MaxRefusedLatency = max(out.MaxRefusedLatency, d)
					if len(out.Errors) < 20 {
						out.Errors = append(out.Errors, fmt.Sprintf("%d: %s", status, errText))
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	out.Elapsed = time.Since(start)
	return out
}

func (c *Cluster) execute(ctx context.Context, client *http.Client, body string, legacy bool) (status int, runID, errText string) {
	if legacy {
		body = strings.Replace(body, "{", `{"agentRuntime":true,`, 1)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", c.APIURL+"/agent/v1/execute", strings.NewReader(body))
	if err != nil {
		return 0, "", err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ans struct {
		RunID string `json:"runId"`
	}
	json.Unmarshal(raw, &ans)
	return resp.StatusCode, ans.RunID, string(bytes.TrimSpace(raw))
}

// Verdict is what became of the accepted runs.
type Verdict struct {
	Accepted  int
	Completed int
	Failed    map[string]int // error (first words) -> count
	Cancelled int
	Retried   int      // runs whose record shows more than one attempt
	Stuck     []string // not terminal when the verification gave up
	Missing   []string // no record: lost
	// Settled is when the last run reached its terminal state, measured from
	// the start of Verify.
	Settled time.Duration
}

// Lost counts the runs that did not end: missing or stuck.
func (v *Verdict) Lost() int { return len(v.Missing) + len(v.Stuck) }

// Verify polls every run until it is terminal or the timeout passes.
func (c *Cluster) Verify(ctx context.Context, ids []string, timeout time.Duration) *Verdict {
	v := &Verdict{Accepted: len(ids), Failed: map[string]int{}}
	start := time.Now()
	deadline := start.Add(timeout)
	pending := slices.Clone(ids)
	client := &http.Client{Timeout: 10 * time.Second}
	for len(pending) > 0 {
		var still []string
		for _, id := range pending {
			d, code := c.details(ctx, client, id)
			switch {
			case code == http.StatusNotFound:
				v.Missing = append(v.Missing, id)
			case d == nil:
				still = append(still, id) // API unavailable: try again
			case d.Status == "completed":
				v.Completed++
			case d.Status == "failed":
				v.Failed[firstWords(d.Error, 6)]++
			case d.Status == "cancelled":
				v.Cancelled++
			default:
				still = append(still, id)
				continue
			}
			if d != nil && d.Attempts > 1 {
				v.Retried++
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			v.Stuck = pending
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	v.Settled = time.Since(start)
	return v
}

type details struct {
	Status   string `json:"status"`
	Error    string `json:"error"`
	Attempts int    `json:"attempts"`
}

func (c *Cluster) details(ctx context.Context, client *http.Client, id string) (*details, int) {
	req, _ := http.NewRequestWithContext(ctx, "GET", c.APIURL+"/agent/v1/run/"+id+"/details", nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	var d details
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return nil, resp.StatusCode
	}
	return &d, resp.StatusCode
}

func firstWords(s string, n int) string {
	w := strings.Fields(s)
	if len(w) > n {
		w = w[:n]
	}
	return strings.Join(w, " ")
}

// statusLine summarizes answers by HTTP status.
func statusLine(by map[int]int) string {
	var keys []int
	for k := range by {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		name := fmt.Sprint(k)
		if k == 0 {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, by[k]))
	}
	return strings.Join(parts, ", ")
}
