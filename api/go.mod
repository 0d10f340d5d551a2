module github.com/openwaba/openwaba/api

go 1.26.8

require (
	github.com/openwaba/openwaba/proto v0.0.0
	google.golang.org/protobuf v1.36.12
)

replace github.com/openwaba/openwaba/proto => ../proto
