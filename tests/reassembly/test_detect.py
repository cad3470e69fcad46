"""HTTP detection by content."""

from reassembly.detect import looks_like_http_request, looks_like_http_response


def test_requests():
    assert looks_like_http_request(b"GET / HTTP/1.1\r\n") is True
    assert looks_like_http_request(b"\r\n\r\nPOST /x HTTP/1.0\r\n") is True
    assert looks_like_http_request(b"PROPFIND /dav HTTP/1.1") is True
    assert looks_like_http_request(b"BREW /pot HTTP/1.1") is True
    assert looks_like_http_request(b"GE") is None
    assert looks_like_http_request(b"") is None
    assert looks_like_http_request(b"\x16\x03\x01\x02\x00") is False
    assert looks_like_http_request(b"SSH-2.0-OpenSSH") is False
    assert looks_like_http_request(b"get lowercase x") is False


def test_responses():
    assert looks_like_http_response(b"HTTP/1.1 200 OK\r\n") is True
    assert looks_like_http_response(b"\r\nhttp/1.0 404") is True
    assert looks_like_http_response(b"HTT") is None
    assert looks_like_http_response(b"\x16\x03\x03") is False
    assert looks_like_http_response(b"SIP/2.0 200") is False


def test_other_protocols_upper_case_commands_are_not_http() -> None:
    # FTP and SMTP commands share the "TOKEN argument" shape of a request line
    for line in (b"USER anonymous\r\n", b"EHLO mail.example\r\n", b"MAIL FROM:<a@b>\r\n", b"QUIT\r\n"):
        assert looks_like_http_request(line) is False, line
    assert looks_like_http_request(b"BREW /pot HTTP/1.1\r\n") is True
