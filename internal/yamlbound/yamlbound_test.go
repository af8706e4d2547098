package yamlbound_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

func TestCheck(t *testing.T) {
	deep := strings.Repeat("[", 300) + strings.Repeat("]", 300)
	cases := []struct {
		name, doc string
		bad       bool
	}{
		{"a manifest", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n", false},
		{"a few aliases", "a: &x {b: c}\nd: *x\ne: *x\n", false},
		{"many documents", strings.Repeat("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n", 2000), false},
		{"billion laughs", yamlbound.Bomb(9), true},
		{"nested too deep", deep, true},
		{"recursive alias", "a: &x [1, *x]\n", true},
		{"not YAML", "a: [\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := yamlbound.Check([]byte(tc.doc), yamlbound.Default)
			if tc.bad {
				require.Error(t, err)
				assert.True(t, errors.Is(err, yamlbound.ErrTooLarge), err)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

// TestCheckIsCheap: refusing a bomb costs kilobytes, not the gigabytes its
// expansion would.
func TestCheckIsCheap(t *testing.T) {
	bomb := []byte(yamlbound.Bomb(9))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	require.Error(t, yamlbound.Check(bomb, yamlbound.Default))
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "bytes allocated to refuse a %d-byte bomb", len(bomb))
}
