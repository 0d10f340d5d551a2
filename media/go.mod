module github.com/openwaba/openwaba/media

go 1.26.8
