package examples_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicehq/sluice/examples/internal/exampletest"
)

// TestLicenseIsApache2 checks that the repository carries the Apache
// License 2.0, whole (its nine sections and the end of its terms), and that
// the README says so.
func TestLicenseIsApache2(t *testing.T) {
	root := exampletest.ModuleRoot(t)
	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	require.NoError(t, err, "the repository needs a LICENSE file")
	require.Regexp(t, `(?m)^\s+Apache License\n\s+Version 2\.0, January 2004\n\s+http://www\.apache\.org/licenses/\n`, string(license))
	sections := regexp.MustCompile(`(?m)^   ([1-9])\. [A-Z]`).FindAllStringSubmatch(string(license), -1)
	var numbers []string
	for _, s := range sections {
		numbers = append(numbers, s[1])
	}
	require.Equal(t, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9"}, numbers, "the nine sections of the terms")
	require.Contains(t, string(license), "END OF TERMS AND CONDITIONS")

	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	require.Regexp(t, "(?m)^## License\n\nApache License 2\\.0", string(readme))
}
