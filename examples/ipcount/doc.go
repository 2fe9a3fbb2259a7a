// Command ipcount counts the requests of each client IP address in JSON
// access logs read from a Kafka topic, over a sliding window, and prints the
// busiest addresses every slide, most requests first.
//
// Each record value is one access-log line as a JSON object (nginx's
// escape=json log format, for example). Lines with a client_real_ip field
// count one request for that address; lines without it, or with it null or
// "" (health checks, internal calls), are skipped and counted in the batch
// line. Lines are read strictly (see [ClientIP]): UTF-8 text holding one
// JSON object and nothing after it; the field matched by its exact name and
// given once; its value a string holding an IPv4 or IPv6 address without a
// zone, counted under its canonical form (an IPv4-mapped IPv6 address as
// the IPv4 address). Other fields are not read, so any valid JSON is fine
// there, unknown fields, repeated fields and numbers included. Lines that
// break these rules are counted as malformed and skipped. Counts over the
// window are kept incrementally with dstream.ReduceByKeyAndWindowInv.
//
// With no flags it starts an embedded Kafka broker, feeds topic
// "access-log" with generated log lines (about 50 a second; some without
// client_real_ip, a few cut short) and prints, every 10 s, the 10 busiest
// addresses of the last 30 s.
//
//	go run ./examples/ipcount
//	go run ./examples/ipcount --brokers kafka:9092 --topic proxy-access-log --window 5m --slide 30s --checkpoint sluice-data/ipcount/proxy
//
// A checkpoint remembers the batch interval, window and slide it was written
// with, and refuses a run with others: give such a run a --checkpoint of its
// own.
//
// With --save PREFIX every slide writes the count of every address in the
// window to PREFIX-<batch ms>.jsonl as {"ip":…,"count":…} lines, highest
// count first, then by address.
//
// With --member NAME it runs as one of several processes sharing the topic
// through the consumer group --group, against a broker they share
// (--brokers). Lines are read where they are, by whichever member owns
// their partition; their requests, named "requests", go through the
// repartition topic <group>-requests-repartition to the member owning the
// address's task, so each member prints the addresses of its own tasks,
// counted one batch after they were read.
package main
