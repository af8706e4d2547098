// Package version holds the build version, set with -ldflags
// "-X github.com/flotilla-dev/flotilla/internal/version.Version=v1.2.3".
package version

// Version of the binary.
var Version = "dev"
