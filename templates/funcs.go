// Package templates renders an ApplicationSet's template once per parameter
// set into Applications. Every string of the template is a Go text/template
// with missingkey=error; templates are parsed once per ApplicationSet
// generation (Compile) and executed per parameter set (Render).
package templates

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

// removed from sprig: they read the controller's environment or network.
var unsafeFuncs = []string{"env", "expandenv", "getHostByName"}

// unstableFuncs render differently on every reconcile (time, randomness,
// fresh keys), so an Application using them would be rewritten forever;
// key generation also costs seconds. A template that calls one fails with
// a message saying so.
var unstableFuncs = []string{"now", "date", "dateInZone", "date_in_zone", "ago", "unixEpoch", "dateModify", "date_modify", "mustDateModify", "must_date_modify",
	"htmlDate", "htmlDateInZone", "duration", "durationRound",
	"randAlphaNum", "randAlpha", "randAscii", "randNumeric", "randBytes", "randInt", "uuidv4", "shuffle",
	"genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert", "genSelfSignedCertWithKey", "genSignedCert", "genSignedCertWithKey",
	"buildCustomCert", "derivePassword", "htpasswd", "bcrypt", "encryptAES", "decryptAES"}

// Bounds of the functions that could otherwise allocate without limit.
const (
	maxRepeatBytes = 64 << 10
	maxSeqItems    = 1000
)

// FuncMap is sprig's text functions minus env, expandenv and
// getHostByName, with unstable functions refused and repeat/until/seq
// bounded, plus toJson, toYaml, fromYaml and normalize.
func FuncMap() template.FuncMap {
	fm := sprig.TxtFuncMap()
	for _, name := range unsafeFuncs {
		delete(fm, name)
	}
	for _, name := range unstableFuncs {
		if _, ok := fm[name]; ok {
			fm[name] = refused(name)
		}
	}
	fm["repeat"] = func(count int, s string) (string, error) {
		if count < 0 || count*len(s) > maxRepeatBytes {
			return "", fmt.Errorf("repeat: the result may be at most %d bytes", maxRepeatBytes)
		}
		return strings.Repeat(s, count), nil
	}
	until, untilStep, seq := fm["until"].(func(int) []int), fm["untilStep"].(func(int, int, int) []int), fm["seq"].(func(...int) string)
	fm["until"] = func(n int) ([]int, error) {
		if n > maxSeqItems || n < -maxSeqItems {
			return nil, fmt.Errorf("until: at most %d items", maxSeqItems)
		}
		return until(n), nil
	}
	fm["untilStep"] = func(start, stop, step int) ([]int, error) {
		if step == 0 || (stop-start)/step > maxSeqItems {
			return nil, fmt.Errorf("untilStep: at most %d items", maxSeqItems)
		}
		return untilStep(start, stop, step), nil
	}
	fm["seq"] = func(params ...int) (string, error) {
		lo, hi := 1, 0
		switch len(params) {
		case 1:
			hi = params[0]
		case 2, 3:
			lo, hi = params[0], params[len(params)-1]
		}
		if hi-lo > maxSeqItems || lo-hi > maxSeqItems {
			return "", fmt.Errorf("seq: at most %d items", maxSeqItems)
		}
		return seq(params...), nil
	}
	fm["toJson"] = toJSON
	fm["toYaml"] = toYAML
	fm["fromYaml"] = fromYAML
	fm["normalize"] = Normalize
	return fm
}

var funcMap = FuncMap()

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func toYAML(v any) (string, error) {
	b, err := yaml.Marshal(v)
	return strings.TrimSuffix(string(b), "\n"), err
}

func fromYAML(s string) (map[string]any, error) {
	out := map[string]any{}
	if err := yamlbound.Check([]byte(s), yamlbound.Default); err != nil {
		return nil, err
	}
	err := yaml.Unmarshal([]byte(s), &out)
	return out, err
}

// Normalize turns s into a valid DNS-1123 subdomain as Argo CD does for
// basenameNormalized: lower case, every character other than [a-z0-9-.]
// becomes '-', leading and trailing non-alphanumerics are trimmed, and the
// result is cut to 253 characters.
func Normalize(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b = append(b, byte(r))
		default:
			b = append(b, '-')
		}
	}
	out := strings.TrimFunc(string(b), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
	if len(out) > 253 {
		out = strings.TrimRightFunc(out[:253], func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
		})
	}
	return out
}

func refused(name string) func(...any) (string, error) {
	return func(...any) (string, error) {
		return "", fmt.Errorf("%s is not available in Flotilla templates: its result changes on every reconcile (time, randomness or new keys), so the Applications would be rewritten forever", name)
	}
}
