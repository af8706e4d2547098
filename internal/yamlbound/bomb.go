package yamlbound

import (
	"fmt"
	"strings"
)

// Bomb is a billion-laughs ConfigMap: levels of ten aliases each over ten
// strings, ~600 bytes that expand to 10^(levels+1) nodes in a parser that
// copies aliases. Tests feed it to every place that parses YAML.
func Bomb(levels int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "  a%d: &a%d [*a%[3]d,*a%[3]d,*a%[3]d,*a%[3]d,*a%[3]d,*a%[3]d,*a%[3]d,*a%[3]d,*a%[3]d,*a%[3]d]\n", i, i, i-1)
	}
	return b.String()
}
