package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestScrapeReadsSources(t *testing.T) {
	drops := uint64(3)
	m := New(Source{
		EndpointsByState: func() map[string]int { return map[string]int{"ready": 4, "creating": 1} },
		Identities:       func() map[string]int { return map[string]int{"reserved": 7, "allocated": 2} },
		Policy: func() PolicyCounts {
			return PolicyCounts{Revision: 9, Policies: 2, Imports: 5, ImportErrors: 3, RefusedTooLarge: 1}
		},
		Datapath: func() ([]DatapathCounter, error) {
			return []DatapathCounter{
				{Reason: "Forwarded", Code: 0, Direction: "egress", Packets: 10, Bytes: 1000},
				{Reason: "Policy denied", Code: 133, Direction: "ingress", Packets: drops, Bytes: 180},
			}, nil
		},
		Maps:       func() ([]MapUsage, error) { return []MapUsage{{Name: "seta_policy", Entries: 16, Max: 64}}, nil },
		EventsLost: func() (uint64, error) { return 42, nil },
	})
	m.ObserveRegeneration(2*time.Millisecond, nil)
	m.ObserveRegeneration(time.Millisecond, errors.New("x"))
	m.ObserveAPI("GET /v1/status", "GET", 200, time.Millisecond)
	out := scrape(t, m)
	for _, want := range []string{
		`seta_endpoint_state{endpoint_state="ready"} 4`,
		`seta_identity{type="allocated"} 2`,
		`seta_policy 2`,
		`seta_policy_max_revision 9`,
		`seta_policy_change_total{outcome="success"} 5`,
		`seta_policy_change_total{outcome="error"} 2`,
		`seta_policy_change_total{outcome="too_large"} 1`,
		`seta_forward_count_total{direction="egress"} 10`,
		`seta_drop_count_total{direction="ingress",reason="Policy denied"} 3`,
		`seta_bpf_map_pressure{map_name="seta_policy"} 0.25`,
		`seta_datapath_events_lost_total 42`,
		`seta_endpoint_regeneration_time_seconds_count{outcome="failure"} 1`,
		`seta_api_request_duration_seconds_count{code="200",method="GET",route="GET /v1/status"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	// Values are read at scrape time.
	drops = 7
	if out := scrape(t, m); !strings.Contains(out, `seta_drop_count_total{direction="ingress",reason="Policy denied"} 7`) {
		t.Error("a second scrape did not see the new counter value")
	}
}

func TestSourceErrorsDoNotHideTheRest(t *testing.T) {
	m := New(Source{
		EndpointsByState: func() map[string]int { return map[string]int{"ready": 1} },
		Datapath:         func() ([]DatapathCounter, error) { return nil, errors.New("map gone") },
	})
	if out := scrape(t, m); !strings.Contains(out, `seta_endpoint_state{endpoint_state="ready"} 1`) {
		t.Errorf("a failing source hid the others:\n%s", out)
	}
}
