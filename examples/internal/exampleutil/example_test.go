package exampleutil_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/dstream"
	"github.com/sluicehq/sluice/examples/internal/exampleutil"
)

func ExampleSortByValue() {
	counts := []dstream.KV[string, int64]{
		dstream.Pair("to", int64(3)), dstream.Pair("the", int64(7)), dstream.Pair("and", int64(3)),
	}
	exampleutil.SortByValue(counts)
	fmt.Println(counts)
	// Output: [(the,7) (and,3) (to,3)]
}

func ExampleSavePath() {
	t := time.UnixMilli(1700000002000)
	fmt.Println(exampleutil.SavePath("out/wc", "", t))
	fmt.Println(exampleutil.SavePath("out/wc", "totals", t))
	// Output:
	// out/wc-1700000002000.jsonl
	// out/wc-totals-1700000002000.jsonl
}

func ExampleFixed() {
	b, _ := json.Marshal(struct {
		Page       string            `json:"page"`
		Popularity exampleutil.Fixed `json:"popularity"`
	}{"page37", 0.1 + 0.2})
	fmt.Println(string(b))
	// Output: {"page":"page37","popularity":0.300000}
}
