package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gitserver"
)

// benchPlain is a plain directory of objects ConfigMaps.
func benchPlain(dir string, app, objects int) map[string]string {
	files := map[string]string{}
	for o := range objects {
		files[fmt.Sprintf("%s/cm-%02d.yaml", dir, o)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%02d}\ndata: {app: \"%d\", n: \"%d\"}\n", o, app, o)
	}
	return files
}

// benchKustomize is benchPlain behind a kustomization with a name prefix
// and labels (what most Kustomize apps do).
func benchKustomize(dir string, app, objects int) map[string]string {
	files := benchPlain(dir, app, objects)
	res := ""
	for o := range objects {
		res += fmt.Sprintf("cm-%02d.yaml,", o)
	}
	files[dir+"/kustomization.yaml"] = fmt.Sprintf("resources: [%s]\nnamePrefix: k-\nlabels: [{pairs: {app: \"%d\"}}]\n", res, app)
	return files
}

// benchChart is a chart rendering objects ConfigMaps from its values.
func benchChart(dir string, app, objects int) map[string]string {
	return map[string]string{
		dir + "/Chart.yaml":  "apiVersion: v2\nname: bench\nversion: 0.1.0\n",
		dir + "/values.yaml": fmt.Sprintf("app: %q\nobjects: %d\n", fmt.Sprint(app), objects),
		dir + "/templates/cms.yaml": `{{- range $i := until (int .Values.objects) }}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: {{ printf "cm-%02d" $i }}, labels: {release: {{ $.Release.Name }}}}
data: {app: {{ $.Values.app | quote }}, n: {{ $i | quote }}}
{{- end }}
`,
	}
}

type renderResult struct {
	kind                       string
	inProcessP50, inProcessP90 float64 // ms
	sandboxP50, sandboxP90     float64
}

func renderReps(quick bool) int {
	if quick {
		return 10
	}
	return 50
}

// benchRender times renders of one Kustomize and one Helm Application of
// 10 ConfigMaps, in process and sandboxed.
func benchRender(ctx context.Context, c config) ([]renderResult, error) {
	dir := filepath.Join(c.work, "render")
	srv, err := gitserver.Start(filepath.Join(dir, "repos"), filepath.Join(dir, "work"))
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	repo, err := srv.CreateRepo("render")
	if err != nil {
		return nil, err
	}
	files := benchKustomize("kustomize", 0, 10)
	for k, v := range benchChart("helm", 0, 10) {
		files[k] = v
	}
	if _, err := repo.Commit(files, "render"); err != nil {
		return nil, err
	}
	cache, err := git.New(git.Options{Dir: filepath.Join(dir, "git"), AllowLoopback: true})
	if err != nil {
		return nil, err
	}
	snap, err := cache.Snapshot(ctx, repo.URL, "main")
	if err != nil {
		return nil, err
	}
	sandbox := &agent.Sandbox{Command: []string{filepath.Join(c.bin, "flotilla-agent"), "render"}, GitDir: cache.Dir(), AllowLoopback: true}
	reps := renderReps(c.quick)
	var out []renderResult
	for _, kind := range []string{"kustomize", "helm"} {
		in := agent.RenderInput{Tree: snap, Source: flotillav1.ApplicationSource{Path: kind}, Release: agent.HelmRelease{Name: "bench", Namespace: "bench"}}
		var local, boxed []float64
		for range reps {
			start := time.Now()
			objs, err := agent.RenderSource(in, agent.RenderOptions{})
			if err != nil || len(objs) != 10 {
				return nil, fmt.Errorf("%s render: %d objects: %w", kind, len(objs), err)
			}
			local = append(local, float64(time.Since(start).Microseconds())/1000)
			start = time.Now()
			if objs, err = sandbox.Render(ctx, in); err != nil || len(objs) != 10 {
				return nil, fmt.Errorf("%s sandboxed render: %d objects: %w", kind, len(objs), err)
			}
			boxed = append(boxed, float64(time.Since(start).Microseconds())/1000)
		}
		r := renderResult{kind: kind, inProcessP50: median(local), inProcessP90: quantile(local, 0.9), sandboxP50: median(boxed), sandboxP90: quantile(boxed, 0.9)}
		logf("  %s: in process p50 %.1f ms, sandboxed p50 %.1f ms", kind, r.inProcessP50, r.sandboxP50)
		out = append(out, r)
	}
	return out, nil
}
