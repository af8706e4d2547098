// Package agent is the spoke side of Flotilla: it makes a cluster match
// the Applications delivered into its namespace — fetch Git, render
// Kustomize securely, server-side apply, prune what it applied, self-heal
// drift, assess health and report it.
package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/helmchart"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

// Render limits.
const (
	DefaultMaxTotalSize = 64 << 20
	DefaultMaxObjects   = 5000
)

// ErrRender wraps every render failure: the user's repository or
// Application needs fixing.
var ErrRender = errors.New("render")

// RenderOptions bound and secure rendering.
type RenderOptions struct {
	// MaxTotalSize caps the bytes loaded from the repository (default 64 MiB).
	MaxTotalSize int64
	// MaxObjects caps the objects one Application may render (default 5,000).
	MaxObjects int
	// AllowRemoteBases lets kustomizations reference remote bases (off by default).
	AllowRemoteBases bool
}

// Tree is the repository at one commit (a *git.Snapshot).
type Tree interface {
	Files() []string
	IsSymlink(p string) bool
	Resolve(p string) (string, git.Kind, error)
	ReadFile(p string) ([]byte, error)
}

var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Render turns an Application's source, read from tree, into objects. A
// directory with a kustomization is built with kustomize; any other
// directory is read as plain YAML/JSON manifests. Either way the
// Application's kustomize options are layered on top. Everything is loaded
// into a private in-memory filesystem holding only the repository, so
// nothing outside it can be read, and nothing is written to disk.
func Render(tree Tree, src flotillav1.ApplicationSource, opts RenderOptions) ([]*unstructured.Unstructured, error) {
	return RenderSource(RenderInput{Tree: tree, Source: src}, opts)
}

// RenderInput is one Application's render: its source, and the Git tree
// at the fetched commit or, for a chart from a Helm repository or an OCI
// registry, the chart's archive.
type RenderInput struct {
	Tree   Tree                         `json:"-"`
	Chart  *helmchart.Chart             `json:"chart,omitempty"`
	Source flotillav1.ApplicationSource `json:"source"`
	// Release and Capabilities are for Helm charts.
	Release      HelmRelease  `json:"release"`
	Capabilities Capabilities `json:"capabilities"`
}

// RenderSource renders any source: a chart archive, a chart directory of
// the repository (Chart.yaml), a kustomization, or plain manifests.
func RenderSource(in RenderInput, opts RenderOptions) ([]*unstructured.Unstructured, error) {
	if opts.MaxTotalSize == 0 {
		opts.MaxTotalSize = DefaultMaxTotalSize
	}
	if opts.MaxObjects == 0 {
		opts.MaxObjects = DefaultMaxObjects
	}
	src, tree := in.Source, in.Tree
	if in.Chart != nil {
		ch, err := chartFromArchive(in.Chart.Archive, in.Chart.Name)
		if err != nil {
			return nil, err
		}
		vals, err := helmValues(src.Helm, archiveValueFile(ch))
		if err != nil {
			return nil, err
		}
		return renderChart(ch, vals, src.Helm, in.Release, in.Capabilities, opts)
	}
	appPath, err := sourceDir(tree, src.Path)
	if err != nil {
		return nil, err
	}
	if isChartDir(tree, appPath) {
		ch, err := chartFromTree(tree, appPath, opts)
		if err != nil {
			return nil, err
		}
		vals, err := helmValues(src.Helm, treeValueFile(tree, appPath))
		if err != nil {
			return nil, err
		}
		return renderChart(ch, vals, src.Helm, in.Release, in.Capabilities, opts)
	}
	// Each render gets its own random root. By default it is an in-memory
	// filesystem holding nothing but the repository; remote bases need
	// kustomize's git cloner and a real disk, so when they are allowed the
	// root is a fresh temporary directory, removed afterwards.
	fs := filesys.MakeFsInMemory()
	root := "/render-" + randomHex()
	if opts.AllowRemoteBases {
		tmp, err := os.MkdirTemp("", "flotilla-render-")
		if err != nil {
			return nil, fmt.Errorf("create the render directory: %w", err)
		}
		defer os.RemoveAll(tmp)
		fs, root = filesys.MakeFsOnDisk(), tmp
	}
	repoRoot := root + "/repo"
	docs := map[string]int{} // repository file → YAML documents in it
	if fs, err = loadRepo(fs, repoRoot, tree, appPath, opts.MaxTotalSize, docs); err != nil {
		return nil, err
	}
	overlay, err := overlayFor(fs, tree, repoRoot, appPath, src, opts, docs)
	if overlay == nil || err != nil {
		return nil, err
	}
	// The overlay sits at the render root, above the repository, so every
	// file it names is under it.
	if err := writeOverlay(fs, root, overlay); err != nil {
		return nil, err
	}
	// In memory the filesystem holds nothing but the repository; on disk
	// (remote bases allowed) every kustomization may read only below
	// itself, as `kustomize build` does by default, so no host file leaks.
	restrict := ktypes.LoadRestrictionsNone
	if opts.AllowRemoteBases {
		restrict = ktypes.LoadRestrictionsRootOnly
	}
	k := krusty.MakeKustomizer(&krusty.Options{
		Reorder:          krusty.ReorderOptionNone,
		LoadRestrictions: restrict,
		PluginConfig:     ktypes.DisabledPluginConfig(),
	})
	resMap, err := k.Run(fs, root)
	if err != nil {
		return nil, fmt.Errorf("%w: kustomize build %s: %s", ErrRender, src.Path, strings.ReplaceAll(err.Error(), root+"/repo/", ""))
	}
	if resMap.Size() > opts.MaxObjects {
		return nil, fmt.Errorf("%w: %s renders %d objects, the limit is %d", ErrRender, src.Path, resMap.Size(), opts.MaxObjects)
	}
	return toObjects(resMap)
}

// sourceDir is source.path cleaned and resolved (symlinks inside the
// repository followed); it must be a directory.
func sourceDir(tree Tree, srcPath string) (string, error) {
	appPath, err := git.CleanPath(srcPath)
	if err != nil {
		return "", fmt.Errorf("%w: source.path: %w", ErrRender, err)
	}
	real, kind, err := tree.Resolve(appPath)
	if err != nil {
		return "", fmt.Errorf("%w: source.path %q: %w", ErrRender, srcPath, err)
	}
	if kind != git.KindDir {
		return "", fmt.Errorf("%w: source.path %q does not exist in the repository (or is not a directory)", ErrRender, srcPath)
	}
	return real, nil
}

// overlayFor is the kustomization the agent builds: the app directory (a
// kustomization, or its manifests) with the Application's kustomize
// options on top. nil means the directory holds no manifests.
func overlayFor(fs filesys.FileSystem, tree Tree, repoRoot, appPath string, src flotillav1.ApplicationSource, opts RenderOptions, docs map[string]int) (*ktypes.Kustomization, error) {
	appDir := path.Join(repoRoot, appPath)
	isKustomize := false
	for _, n := range kustomizationNames {
		if fs.Exists(path.Join(appDir, n)) {
			isKustomize = true
		}
	}
	overlay := &ktypes.Kustomization{TypeMeta: ktypes.TypeMeta{APIVersion: ktypes.KustomizationVersion, Kind: ktypes.KustomizationKind}}
	objects := 0 // at least this many objects: counted before kustomize, whose cost grows faster than linearly
	if isKustomize {
		c := &kustCheck{fs: fs, repoRoot: repoRoot, allowRemote: opts.AllowRemoteBases, seen: map[string]bool{}, docs: docs}
		if err := c.check(appDir); err != nil {
			return nil, err
		}
		objects = c.objects
		overlay.Resources = []string{"repo/" + appPath}
	} else {
		files, err := manifestFiles(tree, appPath, src.Directory)
		if err != nil || len(files) == 0 {
			return nil, err
		}
		for _, f := range files {
			overlay.Resources = append(overlay.Resources, "repo/"+f)
			objects += docs[f]
		}
	}
	if objects > opts.MaxObjects {
		return nil, fmt.Errorf("%w: %s holds at least %d objects, the limit is %d", ErrRender, src.Path, objects, opts.MaxObjects)
	}
	if err := applyOptions(overlay, src.Kustomize); err != nil {
		return nil, err
	}
	return overlay, nil
}

func writeOverlay(fs filesys.FileSystem, dir string, overlay *ktypes.Kustomization) error {
	raw, err := yaml.Marshal(overlay)
	if err != nil {
		return err
	}
	if err := fs.MkdirAll(dir); err != nil {
		return err
	}
	return fs.WriteFile(dir+"/kustomization.yaml", raw)
}

// toObjects converts kustomize's output; every object needs apiVersion,
// kind and name.
func toObjects(resMap resmap.ResMap) ([]*unstructured.Unstructured, error) {
	objs := make([]*unstructured.Unstructured, 0, resMap.Size())
	for _, r := range resMap.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRender, r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil { // numbers become int64, as the apimachinery expects
			return nil, fmt.Errorf("%w: %s: %w", ErrRender, r.CurId(), err)
		}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("%w: a manifest lacks apiVersion, kind or metadata.name (%s)", ErrRender, r.CurId())
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// kustCheck walks the kustomizations reachable from an app before kustomize
// runs: it refuses references that leave the repository (and remote bases
// unless allowed), and counts the objects of the manifests they list.
type kustCheck struct {
	fs          filesys.FileSystem
	repoRoot    string
	allowRemote bool
	seen        map[string]bool
	docs        map[string]int // repository file → YAML documents
	objects     int
}

// check walks dir's kustomization and the directories it references.
func (c *kustCheck) check(dir string) error {
	fs, repoRoot, allowRemote := c.fs, c.repoRoot, c.allowRemote
	if c.seen[dir] {
		return nil
	}
	c.seen[dir] = true
	var raw []byte
	var file string
	for _, n := range kustomizationNames {
		if b, err := fs.ReadFile(path.Join(dir, n)); err == nil {
			raw, file = b, path.Join(dir, n)
			break
		}
	}
	if raw == nil {
		return nil
	}
	rel := strings.TrimPrefix(file, repoRoot+"/")
	var k ktypes.Kustomization
	if err := yaml.Unmarshal(raw, &k); err != nil {
		return fmt.Errorf("%w: %s is not a valid kustomization: %w", ErrRender, rel, err)
	}
	if len(k.OpenAPI) > 0 {
		// kustomize keeps a custom schema process-wide: one Application's
		// schema would change (or break) every other render.
		return fmt.Errorf("%w: %s sets openapi: custom OpenAPI schemas are not supported (kustomize applies them to every render in the process)", ErrRender, rel)
	}
	refs := append(append(append(append([]string{}, k.Resources...), k.Bases...), k.Components...), k.Crds...) //nolint:staticcheck // Bases is deprecated but still read by kustomize
	for _, p := range k.Patches {
		if p.Path != "" {
			refs = append(refs, p.Path)
		}
	}
	for _, p := range k.PatchesStrategicMerge { //nolint:staticcheck
		if !strings.Contains(string(p), "\n") {
			refs = append(refs, string(p))
		}
	}
	for _, g := range append(append([]ktypes.ConfigMapArgs{}, k.ConfigMapGenerator...), secretArgs(k.SecretGenerator)...) {
		for _, f := range append(append([]string{}, g.FileSources...), g.EnvSources...) {
			if i := strings.Index(f, "="); i >= 0 {
				f = f[i+1:]
			}
			refs = append(refs, f)
		}
	}
	for _, ref := range refs {
		if isRemote(ref) {
			if !allowRemote {
				return fmt.Errorf("%w: %s references the remote base %q: remote bases are disabled; vendor it into the repository or run the agent with --allow-remote-bases", ErrRender, rel, ref)
			}
			continue
		}
		target := path.Join(dir, ref)
		if strings.HasPrefix(ref, "/") || (target != repoRoot && !strings.HasPrefix(target, repoRoot+"/")) {
			return fmt.Errorf("%w: %s references %q, which leaves the repository", ErrRender, rel, ref)
		}
		if fs.IsDir(target) {
			if err := c.check(target); err != nil {
				return err
			}
		} else if slices.Contains(k.Resources, ref) {
			if _, err := fs.ReadFile(target); err != nil { // kustomize reads it next anyway: counting loads it now
				return fmt.Errorf("%w: %s lists %q: %w", ErrRender, rel, ref, err)
			}
			c.objects += c.docs[strings.TrimPrefix(target, repoRoot+"/")]
		}
	}
	return nil
}

func secretArgs(s []ktypes.SecretArgs) []ktypes.ConfigMapArgs {
	out := make([]ktypes.ConfigMapArgs, 0, len(s))
	for _, a := range s {
		out = append(out, ktypes.ConfigMapArgs{GeneratorArgs: a.GeneratorArgs})
	}
	return out
}

func isRemote(ref string) bool {
	for _, p := range []string{"http://", "https://", "git::", "git@", "ssh://", "github.com/", "gitlab.com/", "bitbucket.org/"} {
		if strings.HasPrefix(ref, p) {
			return true
		}
	}
	return strings.Contains(ref, "?ref=") || strings.Contains(ref, "//") && !strings.HasPrefix(ref, ".")
}

// manifestFiles lists the plain manifests of a directory.
func manifestFiles(tree Tree, dir string, opts *flotillav1.DirectorySource) ([]string, error) {
	recurse, include, exclude := false, "", ""
	if opts != nil {
		recurse, include, exclude = opts.Recurse, opts.Include, opts.Exclude
	}
	var out []string
	for _, f := range tree.Files() {
		rel := f
		if dir != "" {
			if !strings.HasPrefix(f, dir+"/") {
				continue
			}
			rel = strings.TrimPrefix(f, dir+"/")
		}
		if !recurse && strings.Contains(rel, "/") {
			continue
		}
		base := path.Base(f)
		if include != "" {
			if ok, err := path.Match(include, base); err != nil {
				return nil, fmt.Errorf("%w: directory.include: %w", ErrRender, err)
			} else if !ok {
				continue
			}
		} else if ext := path.Ext(base); ext != ".yaml" && ext != ".yml" && ext != ".json" {
			continue
		}
		if exclude != "" {
			if ok, _ := path.Match(exclude, base); ok {
				continue
			}
		}
		out = append(out, f)
	}
	sort.Strings(out)
	return out, nil
}

// applyOptions layers the Application's kustomize options on the overlay.
func applyOptions(k *ktypes.Kustomization, o *flotillav1.KustomizeSource) error {
	if o == nil {
		return nil
	}
	k.NamePrefix, k.NameSuffix, k.Namespace = o.NamePrefix, o.NameSuffix, o.Namespace
	if len(o.CommonLabels) > 0 {
		k.Labels = []ktypes.Label{{Pairs: o.CommonLabels, IncludeSelectors: true, IncludeTemplates: true}}
	}
	k.CommonAnnotations = o.CommonAnnotations
	for _, img := range o.Images {
		parsed, err := parseImage(img)
		if err != nil {
			return err
		}
		k.Images = append(k.Images, parsed)
	}
	for i, p := range o.Patches {
		if err := yamlbound.Check([]byte(p.Patch), yamlbound.Default); err != nil {
			return fmt.Errorf("%w: spec.source.kustomize.patches[%d]: %w", ErrRender, i, err)
		}
		patch := ktypes.Patch{Patch: p.Patch}
		if t := p.Target; t != nil {
			patch.Target = &ktypes.Selector{
				ResId:              resid.ResId{Gvk: resid.Gvk{Group: t.Group, Version: t.Version, Kind: t.Kind}, Name: t.Name, Namespace: t.Namespace},
				LabelSelector:      t.LabelSelector,
				AnnotationSelector: t.AnnotationSelector,
			}
		}
		k.Patches = append(k.Patches, patch)
	}
	return nil
}

// parseImage reads "name=newName:tag", "name=newName@digest", "name:tag",
// "name@digest" or "name=newName".
func parseImage(s string) (ktypes.Image, error) {
	name, rest, hasEq := strings.Cut(s, "=")
	img := ktypes.Image{Name: name}
	target := rest
	if !hasEq {
		target = s
	}
	ref, digest, hasDigest := strings.Cut(target, "@")
	if hasDigest {
		img.Digest = digest
	}
	repo, tag := ref, ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	if hasEq {
		img.NewName = repo
	} else {
		img.Name = repo
	}
	img.NewTag = tag
	if img.Name == "" || (!hasEq && tag == "" && !hasDigest) {
		return img, fmt.Errorf("%w: kustomize.images %q: use name=newName:tag, name:tag or name@digest", ErrRender, s)
	}
	return img, nil
}

func randomHex() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return fmt.Sprint(os.Getpid())
	}
	return hex.EncodeToString(b)
}
