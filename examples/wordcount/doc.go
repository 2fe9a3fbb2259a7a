// Command wordcount counts the words of the lines in a Kafka topic: every
// slide it prints the most frequent words of the sliding window, each with
// its all-time total.
//
// Each record value is a line of text. Its words are the whitespace-separated
// tokens, lowercased, with leading and trailing punctuation trimmed; tokens
// left empty are dropped. Counts over the window are kept incrementally
// (dstream.ReduceByKeyAndWindowInv: each slide adds the newest batches and
// subtracts the ones that left the window) and all-time totals per word by
// adding up each batch's counts (dstream.ReduceByKey) with
// dstream.UpdateStateByKey. Values that are not UTF-8 text are counted as
// malformed and skipped.
//
// With no flags it starts an embedded Kafka broker, feeds topic "words" with
// generated English-like lines and prints, every 10 s, the top 10 words of
// the last 30 s; every 2 s batch prints a batch line. Ctrl-C stops it after
// the batch in flight commits; running it again resumes from the checkpoint
// in sluice-data/wordcount/checkpoint.
//
//	go run ./examples/wordcount
//	go run ./examples/wordcount --brokers kafka:9092 --topic lines --window 1m --slide 10s --checkpoint sluice-data/wordcount/lines
//
// A checkpoint remembers the batch interval, window and slide it was written
// with, and refuses a run with others: give such a run a --checkpoint of its
// own.
//
// With --save PREFIX every slide writes the window's words to
// PREFIX-<batch ms>.jsonl as {"word":…,"count":…} lines (highest count
// first, then by word), and every batch writes the all-time totals to
// PREFIX-totals-<batch ms>.jsonl (by word).
//
// With --member NAME it runs as one of several processes sharing the topic
// through the consumer group --group, against a broker they share
// (--brokers). Lines are read where they are, by whichever member owns
// their partition; their words, named "words", go through the repartition
// topic <group>-words-repartition to the member owning the word's task, so
// each member prints the words of its own tasks, counted one batch after
// they were read.
package main
