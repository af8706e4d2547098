package agent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

func TestMemoCacheKeepsRendersWithinBudget(t *testing.T) {
	render := func(n int) *memo {
		objs := make([]*unstructured.Unstructured, n)
		for i := range objs {
			objs[i] = &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": "cm"}, "data": map[string]any{"k": "0123456789012345678901234567890123456789"}}}
		}
		rendered, size, err := encodeRender(objs)
		require.NoError(t, err)
		return &memo{rendered: rendered, size: size}
	}
	one := render(1).size
	c := newMemoCache(3 * one)
	key := func(n string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: n} }

	c.put(key("a"), render(1))
	c.put(key("b"), render(1))
	c.put(key("c"), render(1))
	assert.Equal(t, 3*one, c.size)
	require.NotNil(t, c.get(key("a"))) // a is now the most recently used

	c.put(key("d"), render(1)) // over budget: b, the least recently used, goes
	assert.Nil(t, c.get(key("b")))
	for _, k := range []string{"a", "c", "d"} {
		assert.NotNil(t, c.get(key(k)), k)
	}
	assert.Equal(t, 3*one, c.size)

	c.put(key("a"), render(2)) // a replaced: its old size no longer counts
	assert.LessOrEqual(t, c.size, 3*one)
	assert.NotNil(t, c.get(key("a")))

	c.put(key("huge"), render(10)) // alone over budget: kept (its sync uses it), the rest go
	assert.NotNil(t, c.get(key("huge")))
	assert.Equal(t, 1, c.order.Len())
	assert.Equal(t, 10*one, c.size)

	c.remove(key("huge"))
	assert.Zero(t, c.size)
	assert.Nil(t, c.get(key("huge")))

	// A kept render decodes to fresh, equal objects every time.
	m := render(2)
	objs, err := m.objects()
	require.NoError(t, err)
	require.Len(t, objs, 2)
	objs[0].SetName("changed")
	again, err := m.objects()
	require.NoError(t, err)
	assert.Equal(t, "cm", again[0].GetName())
}
