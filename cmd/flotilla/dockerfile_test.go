package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/flotilla-dev/flotilla/"

// deps lists the packages a binary links (`go list -deps`).
func deps(t *testing.T, bin string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "./cmd/"+bin)
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	require.NoError(t, err, "go list -deps ./cmd/%s", bin)
	return strings.Fields(string(out))
}

// TestBinariesLinkNoTestCode: a shipped binary never links the testing
// package, the e2e harness or a test helper (STYLE.md).
func TestBinariesLinkNoTestCode(t *testing.T) {
	forbidden := regexp.MustCompile(`^testing$|^testing/|/e2e(/|$)|/internal/(gittest|testenv)$|/envtest|^github\.com/stretchr/testify`)
	for _, bin := range []string{"flotilla", "flotilla-hub", "flotilla-agent"} {
		t.Run(bin, func(t *testing.T) {
			var bad []string
			for _, p := range deps(t, bin) {
				if forbidden.MatchString(p) {
					bad = append(bad, p)
				}
			}
			require.Empty(t, bad, "./cmd/%s links test code", bin)
		})
	}
}

// TestDockerfiles keeps the images buildable without Docker here: each
// Dockerfile builds its own command with the module's Go version, copies
// exactly the top-level directories the command links, and ends on
// distroless as non-root.
func TestDockerfiles(t *testing.T) {
	root := filepath.Join("..", "..")
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	require.NotNil(t, goVersion)

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
			need := map[string]bool{}
			for _, p := range deps(t, bin) {
				if rest, ok := strings.CutPrefix(p, module); ok {
					need[strings.SplitN(rest, "/", 2)[0]] = true
				}
			}
			var copied []string
			for _, m := range regexp.MustCompile(`(?m)^COPY (\S+)/ `).FindAllStringSubmatch(df, -1) {
				require.DirExists(t, filepath.Join(root, m[1]))
				copied = append(copied, m[1])
			}
			for dir := range need {
				require.Contains(t, copied, dir, "the image build needs %s/", dir)
			}
			sort.Strings(copied)
			require.NotContains(t, copied, "e2e", "the e2e harness is test code")
		})
	}
}
