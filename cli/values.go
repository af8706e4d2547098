package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/internal/enroll"
	"github.com/flotilla-dev/flotilla/internal/version"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

// chartValues are Helm-style value flags: -f/--values files, then --set.
type chartValues struct {
	files []string
	sets  []string
	image string
}

func (v *chartValues) bind(fs *pflag.FlagSet, what string) {
	fs.StringArrayVar(&v.files, "values", nil, "values file for the "+what+" chart (repeatable, as with helm)")
	fs.StringArrayVar(&v.sets, "set", nil, "set a "+what+" chart value, e.g. --set replicas=2 (repeatable, as with helm)")
}

// values merges files then --set, then the image override.
func (v *chartValues) values(defaultTag bool) (map[string]any, error) {
	out := map[string]any{}
	for _, f := range v.files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read --values %s: %w", f, err)
		}
		m := map[string]any{}
		if err := yamlbound.Check(raw, yamlbound.Default); err != nil {
			return nil, fmt.Errorf("--values %s: %w", f, err)
		}
		if err := yaml.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("--values %s is not valid YAML: %w", f, err)
		}
		mergeMaps(out, m)
	}
	for _, s := range v.sets {
		if err := strvals.ParseInto(s, out); err != nil {
			return nil, fmt.Errorf("--set %q: %w (use key=value, e.g. --set replicas=2)", s, err)
		}
	}
	img := map[string]any{}
	if v.image != "" {
		repo, tag := enroll.SplitImage(v.image)
		img["repository"] = repo
		if tag != "" {
			img["tag"] = tag
		}
	}
	if _, ok := img["tag"]; !ok && defaultTag && releasedVersion() && !hasKey(out, "image", "tag") {
		// A released CLI installs its own version.
		img["tag"] = version.Version
	}
	if len(img) > 0 {
		mergeMaps(out, map[string]any{"image": img})
	}
	return out, nil
}

func hasKey(m map[string]any, keys ...string) bool {
	for i, k := range keys {
		v, ok := m[k]
		if !ok {
			return false
		}
		if i == len(keys)-1 {
			return true
		}
		if m, ok = v.(map[string]any); !ok {
			return false
		}
	}
	return false
}

func mergeMaps(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// releasedVersion is true for a tagged release build (v1.2.3), whose images exist.
func releasedVersion() bool {
	v := version.Version
	return strings.HasPrefix(v, "v") && !strings.Contains(v, "-")
}
