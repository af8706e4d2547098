package git

import (
	"bufio"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"path"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Default fetch budgets.
const (
	DefaultMaxObjectSize = 32 << 20  // 32 MiB inflated, per object
	DefaultMaxFetchSize  = 512 << 20 // 512 MiB inflated (and on the wire), per fetch
)

// ErrRepositoryTooLarge means a fetch went over its size budget.
var ErrRepositoryTooLarge = errors.New("repository too large")

// Limits bound what one fetch may bring in. go-git inflates each object of a
// pack in memory while indexing it, so a small pack of a huge all-zero blob
// (or a tiny delta with a huge result) would otherwise cost its full size in
// memory before any file-size check applies.
type Limits struct {
	// MaxObjectSize caps each object's inflated size (deltas: their result).
	MaxObjectSize int64
	// MaxFetchSize caps the inflated sum of a fetch's objects, and its size
	// on the wire.
	MaxFetchSize int64
}

// BindFlags registers the limits' command-line flags (hub and agent).
func (l *Limits) BindFlags(fs *flag.FlagSet) {
	fs.Int64Var(&l.MaxObjectSize, "max-git-object-bytes", DefaultMaxObjectSize, "largest Git object (inflated) a fetch may bring in; a repository with a larger one fails with a clear message")
	fs.Int64Var(&l.MaxFetchSize, "max-fetch-bytes", DefaultMaxFetchSize, "most bytes (inflated) one Git fetch may bring in")
}

func (l Limits) withDefaults() Limits {
	if l.MaxObjectSize <= 0 {
		l.MaxObjectSize = DefaultMaxObjectSize
	}
	if l.MaxFetchSize <= 0 {
		l.MaxFetchSize = DefaultMaxFetchSize
	}
	return l
}

// guardedStorage is go-git's filesystem storage whose pack writer checks
// every pack against the limits before go-git's indexer may inflate it.
type guardedStorage struct {
	*filesystem.Storage
	limits Limits
}

// PackfileWriter implements storer.PackfileWriter.
func (s *guardedStorage) PackfileWriter() (io.WriteCloser, error) {
	w, err := s.Storage.PackfileWriter()
	if err != nil {
		return nil, err
	}
	return newPackGuard(w, s.limits, s.Filesystem()), nil
}

var _ storer.PackfileWriter = (*guardedStorage)(nil)

// packGuard passes a pack through to go-git's writer while a checker reads
// it object by object: each object's header (and a delta's result size) is
// checked before its bytes are passed on, and its inflated bytes are
// counted. A pack over a limit is cut short, so go-git's indexer (which
// resolves objects only once the whole pack has arrived) never inflates it.
type packGuard struct {
	pw   *io.PipeWriter
	done chan error
	next io.WriteCloser
	fs   billy.Filesystem
}

func newPackGuard(next io.WriteCloser, limits Limits, fs billy.Filesystem) *packGuard {
	pr, pw := io.Pipe()
	g := &packGuard{pw: pw, done: make(chan error, 1), next: next, fs: fs}
	go func() {
		t := &teeReader{r: bufio.NewReaderSize(pr, 64<<10), w: next}
		err := checkPack(t, limits)
		if err == nil {
			err = t.flush()
		}
		// A failed check closes the pipe with its reason, so the fetch's
		// next write fails with it at once.
		_ = pr.CloseWithError(errOr(err, io.ErrClosedPipe))
		g.done <- err
	}()
	return g
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// Write passes p to the checker; once the check failed, it returns why.
func (g *packGuard) Write(p []byte) (int, error) { return g.pw.Write(p) }

// Close ends the pack. After a failed check it also removes the temporary
// pack go-git leaves behind when its indexer fails.
func (g *packGuard) Close() error {
	_ = g.pw.Close()
	err := <-g.done
	nerr := g.next.Close()
	if err != nil {
		if tmp, gerr := g.fs.ReadDir(path.Join("objects", "pack")); gerr == nil {
			for _, f := range tmp {
				if len(f.Name()) > 9 && f.Name()[:9] == "tmp_pack_" {
					_ = g.fs.Remove(path.Join("objects", "pack", f.Name()))
				}
			}
		}
		return err
	}
	return nerr
}

// teeReader reads the pack for the checker and passes every byte it read
// on to w: at once, unless held (an object whose header is not checked
// yet). It reads exactly what it is asked for (it is an io.ByteReader, so
// zlib never reads ahead), so object boundaries stay exact.
type teeReader struct {
	r       *bufio.Reader
	w       io.Writer
	out     []byte
	holding bool
	wire    int64
}

func (t *teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.out = append(t.out, p[:n]...)
	t.wire += int64(n)
	return n, errOr(err, t.maybeFlush())
}

func (t *teeReader) ReadByte() (byte, error) {
	b, err := t.r.ReadByte()
	if err != nil {
		return b, err
	}
	t.out = append(t.out, b)
	t.wire++
	return b, t.maybeFlush()
}

func (t *teeReader) maybeFlush() error {
	if t.holding || len(t.out) < 64<<10 {
		return nil
	}
	return t.flush()
}

func (t *teeReader) flush() error {
	if len(t.out) == 0 {
		return nil
	}
	_, err := t.w.Write(t.out)
	t.out = t.out[:0]
	return err
}

// Pack object types (gitformat-pack).
const (
	objOFSDelta = 6
	objREFDelta = 7
)

func checkPack(t *teeReader, l Limits) error {
	var hdr [12]byte
	if _, err := io.ReadFull(t, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) && t.wire == 0 {
			return nil // an empty fetch
		}
		return fmt.Errorf("read pack header: %w", err)
	}
	if string(hdr[:4]) != "PACK" {
		return errors.New("malformed pack: no PACK signature")
	}
	count := binary.BigEndian.Uint32(hdr[8:])
	var inflated int64
	for i := uint32(0); i < count; i++ {
		size, err := checkObject(t, l)
		if err != nil {
			return fmt.Errorf("pack object %d of %d: %w", i+1, count, err)
		}
		inflated += size
		if inflated > l.MaxFetchSize || t.wire > l.MaxFetchSize {
			return fmt.Errorf("%w: the fetch brings in more than %d bytes (the --max-fetch-bytes budget): fetch a smaller revision, or move large files out of the repository", ErrRepositoryTooLarge, l.MaxFetchSize)
		}
	}
	var trailer [20]byte
	if _, err := io.ReadFull(t, trailer[:]); err != nil {
		return fmt.Errorf("read pack trailer: %w", err)
	}
	return nil
}

// checkObject reads one object: its header is checked while held back, a
// delta's result size too, then its inflated bytes are counted as they
// pass. It returns the object's inflated (for a delta: result) size.
func checkObject(t *teeReader, l Limits) (int64, error) {
	t.holding = true
	defer func() { t.holding = false }()
	typ, size, err := readObjectHeader(t)
	if err != nil {
		return 0, err
	}
	switch typ {
	case objOFSDelta:
		if _, err := readVarint(t); err != nil {
			return 0, err
		}
	case objREFDelta:
		if _, err := io.ReadFull(t, make([]byte, 20)); err != nil {
			return 0, err
		}
	}
	if size > l.MaxObjectSize {
		return 0, tooLarge(size, l)
	}
	zr, err := zlib.NewReader(t)
	if err != nil {
		return 0, fmt.Errorf("malformed pack object: %w", err)
	}
	counted := &countingReader{r: zr, max: size}
	var rest io.Reader = counted
	result := size
	if typ == objOFSDelta || typ == objREFDelta {
		br := bufio.NewReaderSize(counted, 16)
		if _, err := readVarint(br); err != nil { // the base's size
			return 0, fmt.Errorf("malformed delta: %w", err)
		}
		if result, err = readVarint(br); err != nil {
			return 0, fmt.Errorf("malformed delta: %w", err)
		}
		if result > l.MaxObjectSize {
			return 0, tooLarge(result, l)
		}
		rest = br
	}
	t.holding = false
	if err := t.flush(); err != nil {
		return 0, err
	}
	if _, err := io.Copy(io.Discard, rest); err != nil {
		return 0, err
	}
	if counted.n != size {
		return 0, fmt.Errorf("malformed pack object: %d bytes inflated, its header says %d", counted.n, size)
	}
	return result, nil
}

func tooLarge(size int64, l Limits) error {
	return fmt.Errorf("%w: an object of %d bytes, the limit is %d (--max-git-object-bytes): move large files out of the repository", ErrRepositoryTooLarge, size, l.MaxObjectSize)
}

// countingReader counts inflated bytes and fails past max: a header must
// not understate what its object inflates to.
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, fmt.Errorf("malformed pack object: it inflates past the %d bytes its header says", c.max)
	}
	return n, err
}

// readObjectHeader reads a pack object's type and size (gitformat-pack).
func readObjectHeader(r io.ByteReader) (byte, int64, error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	typ := (b >> 4) & 7
	size := int64(b & 15)
	shift := uint(4)
	for b&0x80 != 0 {
		if shift > 56 {
			return 0, 0, errors.New("malformed pack object: size overflows")
		}
		if b, err = r.ReadByte(); err != nil {
			return 0, 0, err
		}
		size |= int64(b&0x7f) << shift
		shift += 7
	}
	return typ, size, nil
}

// readVarint reads a little-endian base-128 number (delta sizes; the
// offset of an OFS delta uses another encoding, but only its length matters
// here and both end at the first byte without the high bit).
func readVarint(r io.ByteReader) (int64, error) {
	var v int64
	var shift uint
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		if shift > 56 {
			return 0, errors.New("malformed pack: number overflows")
		}
		v |= int64(b&0x7f) << shift
		if b&0x80 == 0 {
			return v, nil
		}
		shift += 7
	}
}
