module crossyard.dev/services/hello-go

go 1.19
