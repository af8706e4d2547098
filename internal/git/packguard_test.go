package git

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1" //nolint:gosec // a pack's trailer is SHA-1 by format
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-billy/v5/memfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sink records what the guard passed on.
type sink struct {
	bytes.Buffer
	closed bool
}

func (s *sink) Close() error { s.closed = true; return nil }

// guard runs pack through a packGuard and returns what it passed on.
func guard(t *testing.T, pack []byte, l Limits) ([]byte, error) {
	t.Helper()
	out := &sink{}
	g := newPackGuard(out, l.withDefaults(), memfs.New())
	_, werr := io.Copy(g, bytes.NewReader(pack))
	cerr := g.Close()
	assert.True(t, out.closed, "the guard closes go-git's writer")
	if werr != nil {
		assert.Equal(t, werr, cerr, "Close reports the check's error")
	}
	return out.Bytes(), cerr
}

// packObject encodes one pack entry: header, optional delta base reference,
// zlib data. size is what the header claims.
func packObject(typ byte, size int, ofs []byte, data []byte) []byte {
	var b bytes.Buffer
	c := (typ << 4) | byte(size&15)
	size >>= 4
	for size > 0 {
		b.WriteByte(c | 0x80)
		c = byte(size & 0x7f)
		size >>= 7
	}
	b.WriteByte(c)
	b.Write(ofs)
	zw := zlib.NewWriter(&b)
	_, _ = zw.Write(data)
	_ = zw.Close()
	return b.Bytes()
}

func varint(v int) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func pack(objects ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString("PACK")
	_ = binary.Write(&b, binary.BigEndian, uint32(2))
	_ = binary.Write(&b, binary.BigEndian, uint32(len(objects)))
	for _, o := range objects {
		b.Write(o)
	}
	sum := sha1.Sum(b.Bytes()) //nolint:gosec // the pack format
	b.Write(sum[:])
	return b.Bytes()
}

// TestPackGuardPassesRealPacks: a pack git made (blobs, trees, commits and
// deltas) passes through byte for byte.
func TestPackGuardPassesRealPacks(t *testing.T) {
	dir := t.TempDir()
	gitRun := func(stdin string, args ...string) []byte {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.Output()
		require.NoError(t, err, "git %v", args)
		return out
	}
	gitRun("", "init", "-q", "-b", "main")
	big := strings.Repeat("line of a large config file\n", 4000)
	for i := range 3 {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(big+strings.Repeat("x", i)), 0o644))
		gitRun("", "add", ".")
		gitRun("", "commit", "-q", "-m", "c")
	}
	real := gitRun("HEAD\n", "pack-objects", "--revs", "--stdout", "-q")
	require.Greater(t, len(real), 32)

	got, err := guard(t, real, Limits{})
	require.NoError(t, err)
	assert.Equal(t, real, got)

	_, err = guard(t, real, Limits{MaxFetchSize: 50_000})
	require.ErrorIs(t, err, ErrRepositoryTooLarge)
	assert.Contains(t, err.Error(), "more than 50000 bytes")
}

// TestPackGuardRefusesBombs: objects whose inflated size is over the limit
// are stopped at their header, before any of their bytes reach go-git.
func TestPackGuardRefusesBombs(t *testing.T) {
	base := bytes.Repeat([]byte{0}, 1024)
	baseEntry := packObject(3, len(base), nil, base)
	// A delta whose result is 1 GiB of copies of its 1 KiB base: ~50 KiB
	// inflated, far less compressed.
	delta := append(varint(1024), varint(1<<30)...)
	for range 1 << 20 {
		delta = append(delta, 0x80|0x10|0x01, 0x00, 0x04) // copy offset 0, size 1024
	}
	deltaEntry := packObject(6, len(delta), varint(len(baseEntry)), delta)

	cases := []struct {
		name    string
		pack    []byte
		passed  int // bytes go-git may see before the refusal
		errText string
	}{
		{
			name:    "a huge all-zero blob",
			pack:    pack(packObject(3, 64<<20, nil, make([]byte, 64<<20))),
			passed:  12,
			errText: "an object of 67108864 bytes, the limit is 33554432",
		},
		{
			name:    "a small delta with a huge result",
			pack:    pack(baseEntry, deltaEntry),
			passed:  12 + len(baseEntry),
			errText: "an object of 1073741824 bytes, the limit is 33554432",
		},
		{
			name:    "a header that understates its object",
			pack:    pack(packObject(3, 10, nil, make([]byte, 1<<20))),
			errText: "inflates past the 10 bytes its header says",
		},
		{
			name:    "not a pack",
			pack:    []byte("HTTP/1.1 200 OK\r\n\r\n<html>"),
			errText: "no PACK signature",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := guard(t, tc.pack, Limits{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.errText)
			if tc.passed > 0 {
				require.ErrorIs(t, err, ErrRepositoryTooLarge)
				assert.LessOrEqual(t, len(got), tc.passed, "the oversized object's bytes were held back")
			}
		})
	}

	t.Run("an empty fetch", func(t *testing.T) {
		got, err := guard(t, nil, Limits{})
		require.NoError(t, err)
		assert.Empty(t, got)
	})
	t.Run("a truncated pack", func(t *testing.T) {
		_, err := guard(t, pack(baseEntry)[:20], Limits{})
		require.Error(t, err)
		assert.False(t, errors.Is(err, ErrRepositoryTooLarge))
	})
}
