package config

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// Expand replaces ${NAME} and ${NAME:-default} with the environment's values
// (the default when NAME is unset or empty), except on comment lines. Every
// variable that is unset and has no default is reported.
func Expand(text []byte, lookup func(string) (string, bool)) ([]byte, error) {
	var missing []string
	lines := bytes.SplitAfter(text, []byte("\n"))
	for i, line := range lines {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			continue
		}
		var out string
		out, missing = expandString(string(line), lookup, missing)
		lines[i] = []byte(out)
	}
	if err := missingVars(missing); err != nil {
		return nil, err
	}
	return bytes.Join(lines, nil), nil
}

// expandString replaces the references of s, adding the names of unset
// variables without a default to missing.
func expandString(s string, lookup func(string) (string, bool), missing []string) (string, []string) {
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := envRef.FindStringSubmatch(m)
		name, hasDefault := sub[1], sub[2] != ""
		// As in the shell, ${NAME:-default} takes the default when NAME
		// is unset or empty.
		if v, ok := lookup(name); ok && (v != "" || !hasDefault) {
			return v
		}
		if hasDefault {
			return sub[3]
		}
		missing = append(missing, name)
		return m
	})
	return out, missing
}

func missingVars(missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("environment variable(s) %s not set: export them or write ${NAME:-default}", strings.Join(missing, ", "))
}

// expandTree expands the references in every scalar of a parsed file.
func expandTree(root *yaml.Node, lookup func(string) (string, bool)) error {
	e := expander{lookup: lookup}
	e.walk(root)
	return missingVars(e.missing)
}

// expander expands the scalars of a tree, noting unset variables.
type expander struct {
	lookup  func(string) (string, bool)
	missing []string
}

func (e *expander) walk(n *yaml.Node) {
	for _, c := range n.Content {
		e.walk(c)
	}
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value, e.missing = expandString(n.Value, e.lookup, e.missing)
		retype(n)
	}
}

// retype lets an unquoted scalar be typed again from its new value
// (partitions: ${N} is a number), except that one YAML would read as null
// stays a string.
func retype(n *yaml.Node) {
	quoted := n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
	if quoted || n.Tag != "!!str" || yamlNull[n.Value] {
		return
	}
	n.Tag = ""
}

// yamlNull are the plain scalars YAML reads as null.
var yamlNull = map[string]bool{"": true, "~": true, "null": true, "Null": true, "NULL": true}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// knownFields checks that every mapping key of n names a field of t, as
// yaml's Decoder.KnownFields does (a yaml.Node decodes without that check),
// and reports all that do not.
func knownFields(n *yaml.Node, t reflect.Type) error {
	var errs []string
	collectUnknown(n, t, &errs)
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

func collectUnknown(n *yaml.Node, t reflect.Type, errs *[]string) {
	t, custom := decodedAs(t)
	if custom {
		return
	}
	var elem reflect.Type
	switch {
	case n.Kind == yaml.DocumentNode:
		elem = t
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		elem = t.Elem()
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		structKeys(n, t, errs)
	}
	if elem == nil {
		return
	}
	for _, c := range n.Content {
		collectUnknown(c, elem, errs)
	}
}

// decodedAs is the type a value of t is decoded into, pointers followed,
// and whether it decodes itself (a yaml.Unmarshaler, which checks its own).
func decodedAs(t reflect.Type) (reflect.Type, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t, reflect.PointerTo(t).Implements(unmarshalerType)
}

// structKeys checks the keys of mapping n against struct t's fields.
func structKeys(n *yaml.Node, t reflect.Type, errs *[]string) {
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		switch {
		case k.Value == "<<":
		case !ok:
			*errs = append(*errs, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t))
		default:
			collectUnknown(v, f, errs)
		}
	}
}

// yamlFields maps the YAML names of struct t's fields to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}
