package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"
)

// checkOutput validates -o against the formats a command offers.
func checkOutput(format string, allowed ...string) error {
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q: use one of %v", format, allowed)
}

// printList prints objects as a v1 List (json) or YAML documents (yaml).
func printList[T any](w io.Writer, format string, items []T) error {
	switch format {
	case "json":
		list := map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
		return printJSON(w, list)
	case "yaml":
		for i, it := range items {
			if i > 0 {
				if _, err := io.WriteString(w, "---\n"); err != nil {
					return err
				}
			}
			raw, err := yaml.Marshal(it)
			if err != nil {
				return err
			}
			if _, err := w.Write(raw); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown output format %q: use yaml or json", format)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printYAML(w io.Writer, v any) error {
	raw, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(raw)
	return err
}

// age formats like kubectl's AGE column.
func age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// colour wraps s in an ANSI colour when enabled.
type palette struct{ on bool }

func (p palette) paint(code, s string) string {
	if !p.on || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// health colours a health or sync word the way a user reads it.
func (p palette) word(s string) string {
	switch s {
	case "Healthy", "Synced", "True", "Ready":
		return p.paint("32", s)
	case "Progressing", "OutOfSync", "Unknown", "Suspended":
		return p.paint("33", s)
	case "Degraded", "Missing", "False", "NotReady":
		return p.paint("31", s)
	}
	return s
}

// isTerminal reports whether w is a character device (a TTY); colours and
// in-place refresh only happen there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
