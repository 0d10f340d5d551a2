module github.com/openwaba/openwaba/api

go 1.26.8

replace (
	github.com/openwaba/openwaba/media => ../media
	github.com/openwaba/openwaba/proto => ../proto
)

require (
	github.com/google/go-cmp v0.7.0
	github.com/openwaba/openwaba/media v0.0.0-00010101000000-000000000000
	github.com/openwaba/openwaba/proto v0.0.0-00010101000000-000000000000
	google.golang.org/protobuf v1.36.12
)
