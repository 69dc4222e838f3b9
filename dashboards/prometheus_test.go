package dashboards_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// prometheus is a Prometheus server started for a test (Debian's package).
type prometheus struct {
	base string
	http *http.Client
}

// startPrometheus starts Prometheus on addr, scraping the API and the worker
// every second under the job names of dashboards/prometheus/prometheus.yml,
// with the alert rules of rulesFile; it stops at cleanup.
func startPrometheus(t *testing.T, bin, addr, apiAddr, workerAddr, rulesFile string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: oneshot-api
    static_configs:
      - targets: [%q]
  - job_name: oneshot-worker
    static_configs:
      - targets: [%q]
`, rulesFile, apiAddr, workerAddr)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(cfg), 0o644))
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	p := &prometheus{base: "http://" + addr, http: &http.Client{Timeout: 10 * time.Second}}
	p.waitFor(t, "Prometheus ready", 30*time.Second, func() bool {
		resp, err := p.http.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// waitFor polls cond every 100ms until it holds.
func (p *prometheus) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitTargetsUp waits until Prometheus has scraped every target successfully.
func (p *prometheus) waitTargetsUp(t *testing.T, n int) {
	t.Helper()
	p.waitFor(t, fmt.Sprintf("%d targets up", n), 60*time.Second, func() bool {
		res, err := p.query(`up == 1`)
		return err == nil && len(res) == n
	})
}

// waitScrapedAfter waits until every target has been scraped after at.
func (p *prometheus) waitScrapedAfter(t *testing.T, at time.Time) {
	t.Helper()
	p.waitFor(t, "a scrape of every target after "+at.Format(time.TimeOnly), 30*time.Second, func() bool {
		res, err := p.query(`min(timestamp(up))`)
		return err == nil && len(res) == 1 && res[0].Value > float64(at.UnixMilli())/1000
	})
}

// sample is one series of an instant query's answer.
type sample struct {
	Metric map[string]string
	Value  float64
}

// queryError is an answer of Prometheus's API with status "error".
type queryError struct{ errorType, msg string }

func (e *queryError) Error() string { return e.errorType + ": " + e.msg }

// query evaluates an instant query now. A vector answer gives its series, a
// scalar one a single sample without labels.
func (p *prometheus) query(expr string) ([]sample, error) {
	resp, err := p.http.PostForm(p.base+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("answer %d is not JSON: %.200s", resp.StatusCode, body)
	}
	if out.Status != "success" {
		return nil, &queryError{out.ErrorType, out.Error}
	}
	switch out.Data.ResultType {
	case "vector":
		var v []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(out.Data.Result, &v); err != nil {
			return nil, err
		}
		res := make([]sample, len(v))
		for i, s := range v {
			res[i] = sample{Metric: s.Metric, Value: parseValue(s.Value[1])}
		}
		return res, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(out.Data.Result, &v); err != nil {
			return nil, err
		}
		return []sample{{Value: parseValue(v[1])}}, nil
	}
	return nil, fmt.Errorf("unexpected result type %q", out.Data.ResultType)
}

func parseValue(v any) float64 {
	s, _ := v.(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// rule is the state of an alerting rule as Prometheus reports it.
type rule struct {
	Name      string `json:"name"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	State     string `json:"state"`
}

// rules returns the alerting rules Prometheus loaded.
func (p *prometheus) rules() ([]rule, error) {
	resp, err := p.http.Get(p.base + "/api/v1/rules?type=alert")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Groups []struct {
				Rules []rule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	var rules []rule
	for _, g := range out.Data.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules, nil
}

// freeAddr returns a free TCP address on the loopback interface.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}
