// Package decodebench measures upstream metrics-server's kubelet payload decoder alone, on
// the same real 70-pod kind payload as kaddons' criterion bench (benches/decode.rs).
//
// Upstream's decodeBatch is unexported and its own benchmark (BenchmarkKubeletClient_GetMetrics)
// times an HTTP GET together with the decode. A go:linkname reference calls upstream's
// compiled function itself, built from the module proxy; no code of it is copied here.
package decodebench

import (
	"os"
	"testing"
	"time"
	_ "unsafe" // for go:linkname

	_ "sigs.k8s.io/metrics-server/pkg/scraper/client/resource"
	"sigs.k8s.io/metrics-server/pkg/storage"
)

//go:linkname decodeBatch sigs.k8s.io/metrics-server/pkg/scraper/client/resource.decodeBatch
func decodeBatch(b []byte, defaultTime time.Time, nodeName string) (*storage.MetricsBatch, error)

const fixture = "../../../metrics-server/tests/fixtures/kubelet-metrics-resource-kind-70pods.txt"

func load(tb testing.TB) []byte {
	b, err := os.ReadFile(fixture)
	if err != nil {
		tb.Fatalf("reading the payload: %v", err)
	}
	return b
}

// TestDecodeBatchLinked proves the linked function is upstream's decoder at work on this
// payload: one node and 70 pods, as upstream's own TestGetMetrics expects.
func TestDecodeBatchLinked(t *testing.T) {
	ms, err := decodeBatch(load(t), time.Now(), "node1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms.Nodes) != 1 || len(ms.Pods) != 70 {
		t.Fatalf("want 1 node and 70 pods, got %d and %d", len(ms.Nodes), len(ms.Pods))
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	payload := load(b)
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := decodeBatch(payload, now, "node1"); err != nil {
			b.Fatal(err)
		}
	}
}
