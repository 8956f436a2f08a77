"""The few H.264 sequence-parameter-set fields the motion policy needs.

PyAV does not expose ``max_num_ref_frames`` (how far back a P-block may point) nor the VUI's
``max_num_reorder_frames`` (whether B-frames may come), and FFmpeg's exported vectors only say
"past" or "future".  The stream's own vectors are frame-to-previous-frame motion only when a
P-frame can reference nothing but the frame before it, so the reader reads these fields from the
SPS itself (in the ``avcC`` extradata of MP4/MKV, or in-band in an Annex B stream).
"""

from __future__ import annotations

from dataclasses import dataclass

# profile_idc values whose SPS carries chroma_format_idc, bit depths and scaling matrices.
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


@dataclass
class SPSInfo:
    """The parsed fields; ``max_num_reorder_frames`` is None when the VUI does not say."""

    profile_idc: int
    max_num_ref_frames: int
    frame_mbs_only: bool
    max_num_reorder_frames: int | None


class _Bits:
    """MSB-first bit reader over an RBSP (emulation-prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]  # IndexError on a short SPS: caller treats as unknown
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    """Drop the emulation-prevention bytes (00 00 03 -> 00 00)."""
    out = bytearray()
    zeros = 0
    for b in nal:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _skip_hrd(r: _Bits) -> None:
    cpb_cnt = r.ue() + 1
    r.u(8)  # bit_rate_scale, cpb_size_scale
    for _ in range(cpb_cnt):
        r.ue()
        r.ue()
        r.u(1)
    r.u(20)  # four delay/length fields of 5 bits


def parse_sps(nal: bytes) -> SPSInfo:
    """Parse an SPS NAL unit (header byte included).  Raises ValueError/IndexError if malformed."""
    if not nal or nal[0] & 0x1F != 7:
        raise ValueError("not an SPS NAL unit")
    r = _Bits(_rbsp(nal[1:]))
    profile = r.u(8)
    r.u(16)  # constraint flags, level_idc
    r.ue()  # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        chroma_format = r.ue()
        if chroma_format == 3:
            r.u(1)
        r.ue()
        r.ue()
        r.u(1)
        if r.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format != 3 else 12):
                if r.u(1):
                    last, nxt = 8, 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + r.se() + 256) % 256
                        last = nxt or last
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.u(1)
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    refs = r.ue()
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    r.ue()
    r.ue()
    frame_mbs_only = bool(r.u(1))
    if not frame_mbs_only:
        r.u(1)
    r.u(1)  # direct_8x8_inference_flag
    if r.u(1):  # frame_cropping_flag
        for _ in range(4):
            r.ue()
    reorder = None
    try:
        if r.u(1):  # vui_parameters_present_flag
            reorder = _vui_reorder(r)
    except (IndexError, ValueError):
        reorder = None
    return SPSInfo(profile, refs, frame_mbs_only, reorder)


def _vui_reorder(r: _Bits) -> int | None:
    if r.u(1):  # aspect_ratio_info_present_flag
        if r.u(8) == 255:
            r.u(32)
    if r.u(1):  # overscan_info_present_flag
        r.u(1)
    if r.u(1):  # video_signal_type_present_flag
        r.u(4)
        if r.u(1):
            r.u(24)
    if r.u(1):  # chroma_loc_info_present_flag
        r.ue()
        r.ue()
    if r.u(1):  # timing_info_present_flag
        r.u(32)
        r.u(32)
        r.u(1)
    nal_hrd = r.u(1)
    if nal_hrd:
        _skip_hrd(r)
    vcl_hrd = r.u(1)
    if vcl_hrd:
        _skip_hrd(r)
    if nal_hrd or vcl_hrd:
        r.u(1)
    r.u(1)  # pic_struct_present_flag
    if not r.u(1):  # bitstream_restriction_flag
        return None
    r.u(1)
    for _ in range(4):
        r.ue()
    return r.ue()  # max_num_reorder_frames


def _annexb_nals(data: bytes) -> list[bytes]:
    parts = data.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
    return [p for p in parts if p]


def find_sps(extradata: bytes | None, first_packet: bytes | None = None) -> SPSInfo | None:
    """The first SPS in ``avcC`` extradata, Annex B extradata, or an Annex B packet; else None."""
    for blob in (extradata, first_packet):
        if not blob:
            continue
        nals: list[bytes] = []
        if blob[0] == 1 and len(blob) > 8:  # avcC: version 1, ..., numOfSPS at byte 5
            count, pos = blob[5] & 0x1F, 6
            for _ in range(count):
                size = int.from_bytes(blob[pos : pos + 2], "big")
                nals.append(blob[pos + 2 : pos + 2 + size])
                pos += 2 + size
        else:
            nals = _annexb_nals(blob)
        for nal in nals:
            if nal and nal[0] & 0x1F == 7:
                try:
                    return parse_sps(nal)
                except (IndexError, ValueError):
                    return None
    return None
