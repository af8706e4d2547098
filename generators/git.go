package generators

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
	"github.com/flotilla-dev/flotilla/templates"
)

// GitTree is a repository at one commit.
type GitTree interface {
	Dirs() []string
	Files() []string
	IsSymlink(p string) bool
	Resolve(p string) (string, git.Kind, error)
	ReadFile(p string) ([]byte, error)
}

// GitSource reads repositories at a revision.
type GitSource interface {
	Tree(ctx context.Context, repoURL, revision string) (GitTree, error)
}

// GitCache adapts a *git.Cache to GitSource.
type GitCache struct{ Cache *git.Cache }

// Tree implements GitSource.
func (g GitCache) Tree(ctx context.Context, repoURL, revision string) (GitTree, error) {
	return g.Cache.Snapshot(ctx, repoURL, revision)
}

// Git yields one parameter set per matched directory (path.*) or per
// matched JSON/YAML file (the file's keys plus path.*).
type Git struct {
	Source GitSource
}

var _ Generator = (*Git)(nil)

// Generate implements Generator.
func (g *Git) Generate(ctx context.Context, spec *Spec, _ Params) ([]Params, error) {
	gs := spec.Git
	if gs == nil {
		return nil, errors.New("git generator without a git field")
	}
	if g.Source == nil {
		return nil, errors.New("no Git access is configured")
	}
	if len(gs.Directories) > 0 && len(gs.Files) > 0 || len(gs.Directories) == 0 && len(gs.Files) == 0 {
		return nil, errors.New("a git generator needs exactly one of directories or files")
	}
	// Validate globs before touching the network.
	var dirGlobs []dirGlob
	for i, d := range gs.Directories {
		gl, err := compileGlob(d.Path)
		if err != nil {
			return nil, fmt.Errorf("directories[%d]: %w", i, err)
		}
		dirGlobs = append(dirGlobs, dirGlob{gl, d.Exclude})
	}
	var fileGlobs []*glob
	for i, f := range gs.Files {
		gl, err := compileGlob(f.Path)
		if err != nil {
			return nil, fmt.Errorf("files[%d]: %w", i, err)
		}
		fileGlobs = append(fileGlobs, gl)
	}
	tree, err := g.Source.Tree(ctx, gs.RepoURL, gs.Revision)
	if err != nil {
		return nil, err
	}
	if len(dirGlobs) > 0 {
		return directoryParams(tree, dirGlobs)
	}
	return fileParams(tree, fileGlobs)
}

// dirGlob is one directories[] entry.
type dirGlob struct {
	g       *glob
	exclude bool
}

// directoryParams yields path.* for every directory the globs include and
// no exclude matches.
func directoryParams(tree GitTree, dirGlobs []dirGlob) ([]Params, error) {
	var out []Params
	match := func(p string) bool {
		included := false
		for _, dg := range dirGlobs {
			if dg.g.match(p) {
				if dg.exclude {
					return false
				}
				included = true
			}
		}
		return included
	}
	for _, d := range tree.Dirs() {
		if match(d) {
			out = append(out, Params{"path": pathParams(d)})
		}
	}
	// A symlink a glob matches counts as a directory only when it points
	// at one inside the repository; one that leaves it is an error.
	for _, f := range tree.Files() {
		if !tree.IsSymlink(f) || !match(f) {
			continue
		}
		_, kind, err := tree.Resolve(f)
		if err != nil {
			return nil, fmt.Errorf("directory %s: %w", f, err)
		}
		if kind == git.KindDir {
			out = append(out, Params{"path": pathParams(f)})
		}
	}
	return out, nil
}

// fileParams yields each matched file's parameter sets, plus path.* of its
// directory and path.filename(Normalized).
func fileParams(tree GitTree, fileGlobs []*glob) ([]Params, error) {
	var out []Params
	for _, f := range tree.Files() {
		matched := false
		for _, gl := range fileGlobs {
			if gl.match(f) {
				matched = true
				break
			}
		}
		if !matched {
			continue
		}
		raw, err := tree.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sets, err := parseParamsFile(raw)
		if err != nil {
			return nil, fmt.Errorf("file %s: %w", f, err)
		}
		for _, p := range sets {
			pp := pathParams(path.Dir(f))
			pp["filename"] = path.Base(f)
			pp["filenameNormalized"] = templates.Normalize(path.Base(f))
			p["path"] = pp
			out = append(out, p)
		}
	}
	return out, nil
}

// pathParams are path.path, path.basename, path.basenameNormalized and
// path.segments for a repository path.
func pathParams(p string) map[string]any {
	if p == "." {
		p = ""
	}
	segs := []any{}
	if p != "" {
		for _, s := range strings.Split(p, "/") {
			segs = append(segs, s)
		}
	}
	base := path.Base(p)
	if p == "" {
		base = ""
	}
	return map[string]any{
		"path":               p,
		"basename":           base,
		"basenameNormalized": templates.Normalize(base),
		"segments":           segs,
	}
}

// parseParamsFile reads a JSON or YAML file holding an object (one
// parameter set) or a list of objects (one set each).
func parseParamsFile(raw []byte) ([]Params, error) {
	if err := yamlbound.Check(raw, yamlbound.Default); err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("malformed YAML/JSON: %w", err)
	}
	js = bytes.TrimSpace(js)
	switch {
	case len(js) > 0 && js[0] == '{':
		p, err := decodeObject(js)
		if err != nil {
			return nil, err
		}
		return []Params{p}, nil
	case len(js) > 0 && js[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(js, &items); err != nil {
			return nil, fmt.Errorf("malformed list: %w", err)
		}
		out := make([]Params, 0, len(items))
		for i, it := range items {
			p, err := decodeObject(it)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out = append(out, p)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("must hold an object of parameters or a list of them, got %.30s", js)
	}
}
