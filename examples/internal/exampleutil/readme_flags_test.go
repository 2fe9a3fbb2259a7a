package exampleutil

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeFlagsTable checks the README's table of the examples' flags
// against -h of a windowed example: the same flags, and where the README
// gives a default as one value (2s, `warn`), the same default.
func TestReadmeFlagsTable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	require.NoError(t, err)
	section := regexp.MustCompile("(?s)\n## The examples\n(.*?)\n## ").FindSubmatch(readme)
	require.NotNil(t, section, `README.md has no "## The examples" section`)
	row := regexp.MustCompile("(?m)^\\| (`--.*?) \\| (.*?) \\|")
	flagName := regexp.MustCompile("`--([a-z-]+)")
	// A default given as one value: 2s, `warn`; not "0 (unlimited)".
	literal := regexp.MustCompile("^`?([^` <]+)`?$")
	documented := map[string]string{} // flag → the README's default, when given as one value
	for _, m := range row.FindAllStringSubmatch(string(section[1]), -1) {
		names := flagName.FindAllStringSubmatch(m[1], -1)
		for _, n := range names {
			documented[n[1]] = ""
			if d := literal.FindStringSubmatch(m[2]); d != nil && len(names) == 1 && !slices.Contains([]string{"off", "none", "empty"}, d[1]) {
				documented[n[1]] = d[1]
			}
		}
	}

	var help bytes.Buffer
	_, err = ParseFlags(testSpec, []string{"-h"}, &help)
	require.Error(t, err)
	usage := regexp.MustCompile(`(?m)^  -([a-z-]+)(?: \S+)?\n\s+(.*)$`)
	var listed []string
	for _, m := range usage.FindAllStringSubmatch(help.String(), -1) {
		name, text := m[1], m[2]
		listed = append(listed, name)
		def, ok := documented[name]
		if !ok || def == "" {
			continue
		}
		if strings.HasPrefix(def, "sluice-data/") || strings.Contains(def, "<") {
			continue // per example
		}
		require.True(t, strings.HasSuffix(text, `(default "`+def+`")`) || strings.HasSuffix(text, "(default "+def+")"),
			"README says --%s defaults to %s; -h says: %s", name, def, text)
	}
	slices.Sort(listed)
	names := make([]string, 0, len(documented))
	for n := range documented {
		names = append(names, n)
	}
	slices.Sort(names)
	require.Equal(t, listed, names, "the README's flags table and -h list the same flags")
}
