package generators

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// List yields one parameter set per element; each element must be a JSON
// object and its keys become parameters.
type List struct{}

var _ Generator = (*List)(nil)

// Generate implements Generator.
func (*List) Generate(_ context.Context, spec *Spec, parent Params) ([]Params, error) {
	if spec.List == nil {
		return nil, errors.New("list generator without a list")
	}
	out := make([]Params, 0, len(spec.List.Elements))
	for i, el := range spec.List.Elements {
		p, err := decodeObject(el.Raw)
		if err != nil {
			return nil, fmt.Errorf("elements[%d]: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// decodeObject decodes a JSON object keeping numbers as written.
func decodeObject(raw []byte) (Params, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		kind := "empty"
		if len(trimmed) > 0 {
			kind = fmt.Sprintf("%.30s", trimmed)
		}
		return nil, fmt.Errorf("must be an object of parameters like {cluster: staging-1}, got %s", kind)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	p := Params{}
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("not a valid JSON object: %w", err)
	}
	return p, nil
}
