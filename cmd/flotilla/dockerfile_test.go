package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDockerfiles keeps the images buildable without Docker here: each
// Dockerfile builds its own command with the module's Go version, copies
// every top-level Go package directory, and ends on distroless as non-root.
func TestDockerfiles(t *testing.T) {
	root := filepath.Join("..", "..")
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	require.NotNil(t, goVersion)

	// Top-level directories holding non-test Go files.
	var pkgDirs []string
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == "hack" || e.Name() == "bin" {
			continue
		}
		found := false
		_ = filepath.WalkDir(filepath.Join(root, e.Name()), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				found = true
			}
			return nil
		})
		if found {
			pkgDirs = append(pkgDirs, e.Name())
		}
	}
	require.Contains(t, pkgDirs, "cmd")

	for _, bin := range []string{"flotilla", "flotilla-hub", "flotilla-agent"} {
		t.Run(bin, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(root, "cmd", bin, "Dockerfile"))
			require.NoError(t, err)
			df := string(raw)
			require.Contains(t, df, "FROM golang:"+string(goVersion[1])+" AS build")
			require.Contains(t, df, "-o /out/"+bin+" ./cmd/"+bin+"\n")
			require.Contains(t, df, "CGO_ENABLED=0")
			froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
			require.Equal(t, "gcr.io/distroless/static-debian12:nonroot", froms[len(froms)-1][1], "final stage")
			require.Regexp(t, `(?m)^USER 65532:65532$`, df)
			require.Contains(t, df, `ENTRYPOINT ["/`+bin+`"]`)
			for _, dir := range pkgDirs {
				require.Contains(t, df, "COPY "+dir+"/ "+dir+"/", "the image build needs %s/", dir)
			}
			for _, m := range regexp.MustCompile(`(?m)^COPY (\S+)/ `).FindAllStringSubmatch(df, -1) {
				require.DirExists(t, filepath.Join(root, m[1]))
			}
		})
	}
}
