"""HttpContentAssembler: multipart bodies whose boundary matches nothing, alternate readings."""

from __future__ import annotations

import hashlib

from reassembly.content import ALTERNATE
from tests.reassembly.factories import http_objects

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
REQ = b"GET /eicar.txt HTTP/1.1\r\nHost: h\r\n\r\n"
SHELL = b"<?php @eval($_POST['x']); ?>\n"


def _upload(declared: bytes, used: bytes) -> bytes:
    body = (b"--" + used + b"\r\nContent-Disposition: form-data; name=\"f\"; filename=\"up.php\"\r\n\r\n"
            + SHELL + b"\r\n--" + used + b"--\r\n")
    return (b"POST /upload.php HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; boundary=" + declared
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_upload_with_a_boundary_variant_gives_the_part() -> None:
    for cuts in ((), (10, 97, 130, 141)):
        objs = [o for o in http_objects(_upload(b'"AaB03x"', b"aab03x"), OK, cuts=cuts) if o.direction == 0]
        (part,) = objs
        assert (part.kind, part.filename, part.data) == ("part", "up.php", SHELL)
        assert "multipart.boundary_variant" in part.anomalies


def test_upload_whose_delimiter_matches_nothing_is_kept_whole_and_flagged() -> None:
    req = _upload(b"declared-boundary", b"----WebKitFormBoundaryQ7")
    body = req.split(b"\r\n\r\n", 1)[1]
    for cuts in ((), (5, 60, 61, 200)):
        (obj,) = [o for o in http_objects(req, OK, cuts=cuts) if o.direction == 0]
        assert obj.kind == "body" and obj.data == body and obj.md5 == hashlib.md5(body).hexdigest()
        assert {"multipart.no_part_found", "multipart.no_boundary"} <= set(obj.anomalies)
        assert obj.declared_mime == "multipart/form-data" and obj.url == "/upload.php"


def test_alternate_reading_identical_to_the_main_one_is_not_reported() -> None:
    # "68;" is Firefox's 68 and Chromium's "to the close": the same 68 bytes here
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 68;\r\nConnection: close\r\n\r\n" + EICAR
    objs = http_objects(REQ, resp)
    assert [o.data for o in objs] == [EICAR] and "http.ambiguous_content_length" in objs[0].anomalies


def test_alternate_readings_that_differ_are_both_reported() -> None:
    for resp, main, alt in (
        (b"HTTP/1.1 200 OK\r\nContent-Length: 34\r\n 68\r\n\r\n" + EICAR, EICAR[:34], EICAR),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 68 136\r\n\r\n" + EICAR + b"X" * 68, EICAR, EICAR + b"X" * 68),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 68\r\n\r\n"
         b"88\r\n" + EICAR + b"x" * 68 + b"\r\n0\r\n\r\n", EICAR + b"x" * 68, EICAR),
    ):
        objs = http_objects(REQ, resp)
        mains = [o.data for o in objs if ALTERNATE not in o.anomalies and o.tx_id == 0]
        alts = [o for o in objs if ALTERNATE in o.anomalies]
        assert mains[0] == main and [o.data for o in alts] == [alt], resp
        assert alts[0].tx_id == 0 and alts[0].url == "/eicar.txt"
