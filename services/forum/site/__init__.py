"""The site's own pages: the community guidelines and the API's readable description."""
