package generators

import (
	"fmt"
	"path"
	"strings"

	"github.com/flotilla-dev/flotilla/internal/git"
)

// glob matches repository paths with path.Match per segment, plus "**" for
// any number of segments.
type glob struct {
	pattern  string
	segments []string
}

func compileGlob(pattern string) (*glob, error) {
	clean, err := git.CleanPath(pattern)
	if err != nil {
		return nil, err
	}
	if clean == "" {
		return nil, fmt.Errorf("%q matches nothing: give a path relative to the repository root", pattern)
	}
	segs := strings.Split(clean, "/")
	for _, s := range segs {
		if s == "**" {
			continue
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, fmt.Errorf("bad glob %q: %w", pattern, err)
		}
	}
	return &glob{pattern: clean, segments: segs}, nil
}

func (g *glob) match(p string) bool {
	return matchSegments(g.segments, strings.Split(p, "/"))
}

func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(name); i++ {
				if matchSegments(rest, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
