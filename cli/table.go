package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// table prints aligned columns like kubectl, colouring cells after padding
// so escape codes never break the alignment.
type table struct {
	header []string
	rows   [][]string
	colour palette
	// paint lists the column indexes whose words are coloured.
	paint map[int]bool
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) error {
	widths := make([]int, len(t.header))
	for _, r := range append([][]string{t.header}, t.rows...) {
		for i, c := range r {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
	}
	var b strings.Builder
	line := func(r []string, head bool) {
		var l strings.Builder
		for i, c := range r {
			cell := c
			if !head && t.paint[i] {
				cell = t.colour.word(c)
			}
			l.WriteString(cell)
			if i < len(r)-1 {
				l.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+3))
			}
		}
		// No trailing blanks when the last cells are empty.
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteString("\n")
	}
	line(t.header, true)
	for _, r := range t.rows {
		line(r, false)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func itoa[T ~int32 | ~int](n T) string { return fmt.Sprint(n) }
