package agent

import (
	"container/list"
	"encoding/json"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultRenderCacheBytes bounds the renders the agent keeps between
// reconciles (as JSON: ~2 KiB an object, so ~30,000 objects).
const DefaultRenderCacheBytes = 64 << 20

// memoCache keeps each Application's memo. The renders they hold are kept
// as JSON (several times smaller than decoded objects) and bounded in
// bytes: the least recently used memo is dropped first, and its
// Application renders again at its next reconcile (applying the same
// objects again changes nothing on the cluster).
type memoCache struct {
	mu     sync.Mutex
	budget int64
	size   int64
	order  *list.List // of *memoEntry, most recently used first
	byKey  map[types.NamespacedName]*list.Element
}

type memoEntry struct {
	key types.NamespacedName
	m   *memo
}

func newMemoCache(budget int64) *memoCache {
	if budget <= 0 {
		budget = DefaultRenderCacheBytes
	}
	return &memoCache{budget: budget, order: list.New(), byKey: map[types.NamespacedName]*list.Element{}}
}

// get returns key's memo (nil if none) and marks it recently used.
func (c *memoCache) get(key types.NamespacedName) *memo {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*memoEntry).m
}

// put stores key's memo, then drops the least recently used others while
// the renders are over budget (never the one just stored: its reconcile is
// using it).
func (c *memoCache) put(key types.NamespacedName, m *memo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(key)
	c.byKey[key] = c.order.PushFront(&memoEntry{key: key, m: m})
	c.size += m.size
	for c.size > c.budget && c.order.Len() > 1 {
		oldest := c.order.Back().Value.(*memoEntry)
		c.removeLocked(oldest.key)
		renderCacheEvictions.Inc()
	}
	renderCacheBytes.Set(float64(c.size))
}

func (c *memoCache) remove(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(key)
	renderCacheBytes.Set(float64(c.size))
}

func (c *memoCache) removeLocked(key types.NamespacedName) {
	if e, ok := c.byKey[key]; ok {
		c.size -= e.Value.(*memoEntry).m.size
		c.order.Remove(e)
		delete(c.byKey, key)
	}
}

// encodeRender keeps a render as JSON.
func encodeRender(objs []*unstructured.Unstructured) ([][]byte, int64, error) {
	out := make([][]byte, len(objs))
	var size int64
	for i, o := range objs {
		b, err := json.Marshal(o.Object)
		if err != nil {
			return nil, 0, fmt.Errorf("keep the render: %w", err)
		}
		out[i] = b
		size += int64(len(b))
	}
	return out, size, nil
}

// objects decodes the memo's render: fresh objects for this sync to change.
func (m *memo) objects() ([]*unstructured.Unstructured, error) {
	objs := make([]*unstructured.Unstructured, len(m.rendered))
	for i, b := range m.rendered {
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("read the kept render: %w", err)
		}
		objs[i] = o
	}
	return objs, nil
}
