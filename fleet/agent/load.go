package agent

import (
	"bytes"
	"fmt"
	"path"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

// loader reads repository files into the render's filesystem: every file
// under the app path at once (each must be readable and bounded: a symlink
// leaving the repository, an oversized file or a YAML bomb there is an
// error), every other file when kustomize first reads it, so a render
// loads only what its kustomizations reach. Loaded bytes count toward
// maxTotal either way.
type loader struct {
	tree     Tree
	repoRoot string
	maxTotal int64
	total    int64
	docs     map[string]int // repository file → YAML documents in it
}

// load reads one repository file, checks it and counts it.
func (l *loader) load(f string) ([]byte, error) {
	raw, err := l.tree.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	if l.total += int64(len(raw)); l.total > l.maxTotal {
		return nil, fmt.Errorf("%w: the render reads more than %d bytes of the repository: split it or raise --max-render-bytes", ErrRender, l.maxTotal)
	}
	// Any file may be a manifest, kustomization or patch that kustomize
	// parses: each is bounded first (binary files are skipped).
	if !bytes.Contains(raw, []byte{0}) {
		n, err := yamlbound.Documents(raw, yamlbound.Default)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRender, f, err)
		}
		l.docs[f] = n
	}
	return raw, nil
}

// loadRepo lays the repository out in fs and returns the filesystem the
// render uses (fs, with contents outside the app path read on demand).
func loadRepo(fs filesys.FileSystem, repoRoot string, tree Tree, appPath string, maxTotal int64, docs map[string]int) (filesys.FileSystem, error) {
	l := &loader{tree: tree, repoRoot: repoRoot, maxTotal: maxTotal, docs: docs}
	lazy := &lazyFS{FileSystem: fs, pending: map[string]string{}, load: l.load}
	under := func(p string) bool { return appPath == "" || p == appPath || strings.HasPrefix(p, appPath+"/") }
	for _, f := range tree.Files() {
		target := f // the repository file whose content this path shows
		if tree.IsSymlink(f) {
			if real, kind, err := tree.Resolve(f); err == nil && kind == git.KindDir {
				// A symlink to a directory inside the repository shows that
				// directory's files under its own path too.
				for _, g := range tree.Files() {
					if strings.HasPrefix(g, real+"/") && !tree.IsSymlink(g) {
						if err := lazy.lazily(path.Join(repoRoot, f, strings.TrimPrefix(g, real)), g); err != nil {
							return nil, err
						}
					}
				}
				continue
			}
		}
		full := path.Join(repoRoot, f)
		if !under(f) {
			if err := lazy.lazily(full, target); err != nil {
				return nil, err
			}
			continue
		}
		raw, err := l.load(f)
		if err != nil {
			return nil, err
		}
		if err := fs.MkdirAll(path.Dir(full)); err != nil {
			return nil, err
		}
		if err := fs.WriteFile(full, raw); err != nil {
			return nil, err
		}
	}
	return lazy, nil
}

// lazyFS is a filesystem whose files exist from the start (empty) and get
// their content from the repository when first read.
type lazyFS struct {
	filesys.FileSystem
	pending map[string]string // path in the filesystem → repository file
	load    func(string) ([]byte, error)
}

// lazily lays out an empty file at full whose content is repository file f.
func (z *lazyFS) lazily(full, f string) error {
	if err := z.FileSystem.MkdirAll(path.Dir(full)); err != nil {
		return err
	}
	if err := z.FileSystem.WriteFile(full, nil); err != nil {
		return err
	}
	z.pending[full] = f
	return nil
}

// fill reads a pending file's content in.
func (z *lazyFS) fill(p string) error {
	p = path.Clean(p)
	f, ok := z.pending[p]
	if !ok {
		return nil
	}
	delete(z.pending, p)
	raw, err := z.load(f)
	if err != nil {
		return err
	}
	return z.FileSystem.WriteFile(p, raw)
}

// ReadFile implements filesys.FileSystem.
func (z *lazyFS) ReadFile(p string) ([]byte, error) {
	if err := z.fill(p); err != nil {
		return nil, err
	}
	return z.FileSystem.ReadFile(p)
}

// Open implements filesys.FileSystem.
func (z *lazyFS) Open(p string) (filesys.File, error) {
	if err := z.fill(p); err != nil {
		return nil, err
	}
	return z.FileSystem.Open(p)
}

var _ filesys.FileSystem = (*lazyFS)(nil)
