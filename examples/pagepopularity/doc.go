// Command pagepopularity ranks the pages of a forum by popularity, computed
// from user behaviour records in a Kafka topic, and prints the top pages
// every batch.
//
// Each record value is pageID|clicks|stayMinutes|like, for example
// page37|5|1.5119122|-1: the clicks on the page, the minutes the user
// stayed, and 1 (like), 0 (no opinion) or -1 (dislike). A record adds
// 0.8·clicks + 0.8·stay + like to its page's popularity, which accumulates
// for ever with dstream.UpdateStateByKey. Records with another number of
// fields, an empty page or a field that is not a number are counted as
// malformed and skipped.
//
// With no flags it starts an embedded Kafka broker, feeds topic
// "user-behavior" with bursts of generated records (100 pages, clicks 1–5,
// stay in [0, 5), like ∈ {1, 0, −1}; about 20 records/s, see --generate)
// and prints the 10 most popular pages every 2 s batch.
//
//	go run ./examples/pagepopularity
//	go run ./examples/pagepopularity --brokers kafka:9092 --topic user-behavior-topic
//
// With --save PREFIX every batch writes the popularity of every page in
// state to PREFIX-<batch ms>.jsonl as {"page":…,"popularity":…} lines,
// popularity with six decimals, most popular first, then by page.
//
// With --member NAME it runs as one of several processes sharing the topic
// through the consumer group --group, against a broker they share
// (--brokers): each owns some of the partitions and ranks the pages of
// those. Its state is kept by page, the key of its records (the generator
// keys them so, and so must other producers, with Kafka's default
// partitioner), so no record goes through a repartition topic.
package main
