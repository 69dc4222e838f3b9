package dashboards_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/oneshot-dev/oneshot/internal/system"
	"github.com/oneshot-dev/oneshot/internal/systemtest"
)

// runDeadline is the worker's run deadline in this test: the timeout run
// lasts this long, every other run far less.
const runDeadline = 10 * time.Second

// TestOperations starts the API and a worker as two processes' worth of
// systems on a real Redis, with a real Prometheus scraping both every
// second, runs a workload that gives every dashboard panel something to show,
// then checks:
//   - both /metrics endpoints serve their metrics, with no run id in a label;
//   - the Asynq UI answers at /monitoring, lists the execute queue, and
//     charts from Prometheus (ONESHOT_PROMETHEUS_URL);
//   - every PromQL expression of every dashboard panel parses and returns at
//     least one series with a number (not only NaN);
//   - every alert rule parses, and Prometheus evaluates it without error;
//   - screenshots of /monitoring and /metrics (headless Chromium) land in
//     testdata/artifacts/ at the repository top.
//
// Prometheus and Chromium are Debian packages (.ci/run installs them); without
// them the parts that need them are skipped, saying so.
func TestOperations(t *testing.T) {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	rdb := systemtest.StartRedis(t)
	models := fakeOpenAI(t)
	promBin, _ := exec.LookPath("prometheus")
	promAddr := freeAddr(t)

	cfg := systemtest.Config(rdb.URL)
	cfg.Monitoring = "on"
	cfg.PrometheusURL = "http://" + promAddr
	cfg.OpenAIBaseURL = models.URL + "/v1"
	cfg.DisableStreaming = true
	cfg.RetryBaseDelay = 10 * time.Millisecond
	cfg.MaxTurns = 6
	cfg.RunDeadline = runDeadline
	apiSys := systemtest.Start(t, cfg, system.Roles{API: true})
	workerSys := systemtest.Start(t, cfg, system.Roles{Worker: true})
	require.NotEmpty(t, workerSys.WorkerAddr, "a worker without the API serves its own /metrics")
	c := newClient(apiSys.APIAddr)

	var prom *prometheus
	if promBin == "" {
		t.Log("prometheus is not installed (apt-get install prometheus): dashboard and alert queries are not evaluated")
	} else {
		prom = startPrometheus(t, promBin, promAddr, apiSys.APIAddr, workerSys.WorkerAddr,
			filepath.Join(root, "dashboards", "prometheus", "alerts.yml"))
		prom.waitTargetsUp(t, 2)
	}

	// Two rounds, with a scrape between them: a counter or histogram that
	// first appears in round one then grows in round two, so rate() and
	// histogram_quantile() over it give numbers, not only series.
	waitSlow := slowRuns(t, c)
	workload(t, c)
	if prom != nil {
		prom.waitScrapedAfter(t, time.Now())
	}
	workload(t, c)
	waitSlow()
	end := time.Now()
	if t.Failed() {
		t.FailNow()
	}

	t.Run("metrics endpoints", func(t *testing.T) {
		apiMetrics := get(t, "http://"+apiSys.APIAddr+"/metrics", http.StatusOK)
		workerMetrics := get(t, "http://"+workerSys.WorkerAddr+"/metrics", http.StatusOK)
		for _, name := range []string{
			"oneshot_http_requests_total", "oneshot_http_request_duration_seconds_bucket",
			"oneshot_api_executes_total", "oneshot_api_sync_waiters", "oneshot_api_working_requests", "oneshot_api_working_limit",
			"asynq_queue_size", "asynq_queue_latency_seconds", "asynq_tasks_enqueued_total",
			"asynq_tasks_processed_total", "asynq_tasks_failed_total",
			"go_goroutines", "process_resident_memory_bytes",
		} {
			require.Contains(t, apiMetrics, "\n"+name, "API /metrics")
		}
		for _, name := range []string{
			"oneshot_worker_runs_total", "oneshot_worker_run_failures_total", "oneshot_worker_run_duration_seconds_bucket",
			"oneshot_worker_queue_wait_seconds_bucket", "oneshot_worker_runs_in_flight", "oneshot_worker_concurrency",
			"oneshot_worker_tool_calls_total", "oneshot_worker_tool_duration_seconds_bucket",
			"oneshot_sandbox_create_duration_seconds_bucket", "oneshot_sandbox_acquire_duration_seconds_bucket",
			"oneshot_sandbox_warm_sandboxes", "oneshot_sandbox_pool_misses_total", "oneshot_sandbox_oom_kills_total",
			"oneshot_sandbox_create_failures_total",
			"oneshot_model_calls_total", "oneshot_model_tokens_total", "oneshot_model_retries_total",
			"oneshot_model_errors_total", "oneshot_model_call_duration_seconds_bucket",
			"oneshot_tool_calls_total", "go_goroutines",
		} {
			require.Contains(t, workerMetrics, "\n"+name, "worker /metrics")
		}
		require.NotContains(t, workerMetrics, "\nasynq_", "queue metrics come from the API only")
		runID := regexp.MustCompile(`="run_[^"]*"`)
		require.Empty(t, runID.FindAllString(apiMetrics+workerMetrics, -1), "a run id in a label")
		for _, addr := range []string{apiSys.APIAddr, workerSys.WorkerAddr} {
			get(t, "http://"+addr+"/healthz", http.StatusOK)
			require.Contains(t, get(t, "http://"+addr+"/readyz", http.StatusOK), "ready")
		}
	})

	t.Run("asynq UI", func(t *testing.T) {
		page := get(t, "http://"+apiSys.APIAddr+"/monitoring", http.StatusOK)
		require.Contains(t, page, "<html")
		// The page carries ONESHOT_PROMETHEUS_URL (with its slashes escaped).
		require.Contains(t, strings.ReplaceAll(page, `\/`, "/"), `window.FLAG_PROMETHEUS_SERVER_ADDRESS="http://`+promAddr+`"`)
		var queues struct {
			Queues []struct {
				Queue string `json:"queue"`
			} `json:"queues"`
		}
		require.NoError(t, json.Unmarshal([]byte(get(t, "http://"+apiSys.APIAddr+"/monitoring/api/queues", http.StatusOK)), &queues))
		var names []string
		for _, q := range queues.Queues {
			names = append(names, q.Queue)
		}
		require.Contains(t, names, "execute")
		if prom == nil {
			t.Skip("no Prometheus: the UI's charts are not checked")
		}
		// The UI's charts: asynqmon asks Prometheus for the asynq_* metrics.
		var charts map[string]struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(get(t, "http://"+apiSys.APIAddr+"/monitoring/api/metrics?duration=300", http.StatusOK)), &charts))
		for _, chart := range []string{"queue_size", "queue_latency_seconds", "tasks_processed_per_second"} {
			require.NotEmpty(t, charts[chart].Data.Result, "Asynq UI chart %s has no data", chart)
		}
	})

	t.Run("screenshots", func(t *testing.T) {
		chromium, err := exec.LookPath("chromium")
		if err != nil {
			t.Skip("chromium is not installed (apt-get install chromium): no screenshots")
		}
		dir := filepath.Join(root, "testdata", "artifacts")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		shots := map[string]string{
			"monitoring.png":         "/monitoring",
			"monitoring-queue.png":   "/monitoring/queues/execute",
			"monitoring-metrics.png": "/monitoring/q/metrics",
			"metrics.png":            "/metrics",
		}
		for file, path := range shots {
			out := filepath.Join(dir, file)
			screenshot(t, chromium, "http://"+apiSys.APIAddr+path, out)
			t.Logf("screenshot of %s: %s", path, out)
		}
	})

	t.Run("panels show data", func(t *testing.T) {
		if prom == nil {
			t.Skip("prometheus is not installed")
		}
		prom.waitScrapedAfter(t, end)
		var problems []string
		queries := 0
		for _, d := range loadDashboards(t, root) {
			for _, p := range d.panels() {
				for _, tg := range p.Targets {
					queries++
					expr := promQL(tg.Expr)
					res, err := prom.query(expr)
					where := fmt.Sprintf("%s: panel %q, query %s: %s", d.file, p.Title, tg.RefID, expr)
					switch {
					case err != nil:
						problems = append(problems, where+"\n    does not evaluate: "+err.Error())
					case len(res) == 0:
						problems = append(problems, where+"\n    shows no data: no series")
					case !anyNumber(res):
						problems = append(problems, where+"\n    shows no data: every value is NaN")
					default:
						t.Logf("%-60.60s %-3s %d series, e.g. %v = %g", d.file+" "+p.Title, tg.RefID, len(res), res[0].Metric, res[0].Value)
					}
				}
			}
		}
		require.Empty(t, problems, "%d of %d dashboard queries fail:\n%s", len(problems), queries, strings.Join(problems, "\n"))
		require.Greater(t, queries, 40)
		t.Logf("all %d dashboard queries show data", queries)
	})

	t.Run("alert rules", func(t *testing.T) {
		if prom == nil {
			t.Skip("prometheus is not installed")
		}
		rules := loadAlertRules(t, root)
		for _, r := range rules {
			_, err := prom.query(r.Expr)
			require.NoError(t, err, "alert %s: expr does not evaluate:\n%s", r.Alert, r.Expr)
		}
		// Prometheus loaded the file itself and evaluates every rule (each
		// second here) without an error.
		var loaded []rule
		prom.waitFor(t, "every alert rule evaluated", 30*time.Second, func() bool {
			loaded, err = prom.rules()
			if err != nil || len(loaded) != len(rules) {
				return false
			}
			for _, r := range loaded {
				if r.Health != "ok" {
					return false
				}
			}
			return true
		})
		for _, r := range loaded {
			t.Logf("alert %-30s health %s, state %s", r.Name, r.Health, r.State)
		}
		t.Logf("all %d alert rules parse and evaluate", len(rules))
	})
}

// promQL makes a dashboard query a plain PromQL one: Grafana's interval
// variables become fixed ranges.
func promQL(expr string) string {
	return strings.NewReplacer(
		"${__rate_interval}", "1m", "$__rate_interval", "1m",
		"${__interval}", "1m", "$__interval", "1m",
		"${__range}", "5m", "$__range", "5m",
	).Replace(expr)
}

func anyNumber(res []sample) bool {
	for _, s := range res {
		if !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
			return true
		}
	}
	return false
}

// get fetches url, checks the status and returns the body.
func get(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, want, resp.StatusCode, "GET %s: %.300s", url, b)
	return string(b)
}

// screenshot saves a PNG of url taken by headless Chromium.
func screenshot(t *testing.T, chromium, url, out string) {
	t.Helper()
	os.Remove(out)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir="+t.TempDir(),
		// The Asynq UI is a single-page app: let its scripts and API calls run.
		"--virtual-time-budget=10000",
		"--screenshot="+out, "--window-size=1280,900", url)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "chromium: %s", b)
	png, err := os.ReadFile(out)
	require.NoError(t, err, "chromium wrote no screenshot: %s", b)
	require.True(t, strings.HasPrefix(string(png), "\x89PNG"), "not a PNG")
}

// dashboard is the part of a Grafana dashboard's JSON the tests read.
type dashboard struct {
	file       string
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *datasourceRef           `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// panels returns the dashboard's panels that show data, rows' included.
func (d dashboard) panels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// loadDashboards reads every dashboard of dashboards/grafana.
func loadDashboards(t *testing.T, root string) []dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "dashboards", "grafana", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var d dashboard
		require.NoError(t, json.Unmarshal(b, &d), f)
		d.file = filepath.Base(f)
		out = append(out, d)
	}
	return out
}

// alertRule is one rule of dashboards/prometheus/alerts.yml.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadAlertRules(t *testing.T, root string) []alertRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "dashboards", "prometheus", "alerts.yml"))
	require.NoError(t, err)
	var file struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &file))
	var rules []alertRule
	for _, g := range file.Groups {
		rules = append(rules, g.Rules...)
	}
	require.NotEmpty(t, rules)
	return rules
}
