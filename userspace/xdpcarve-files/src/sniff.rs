//! Content sniffing: the real type of a file from its first bytes, whatever the sender claimed.
//!
//! Names follow libmagic (what `file --mime-type` and Zeek print), so policy regexes written for
//! those tools keep working: `application/x-dosexec`, `application/vnd.ms-cab-compressed`,
//! `application/x-shockwave-flash`, `application/x-java-applet`, ... The types a sensor must never
//! get wrong are checked here directly; the long tail is left to the `infer` crate.

/// Sniffs the MIME type of content starting with `buf`. `None` for empty input.
pub fn sniff(buf: &[u8]) -> Option<&'static str> {
    if buf.is_empty() {
        return None;
    }
    if let Some(t) = sniff_binary(buf) {
        return Some(t);
    }
    if let Some(t) = infer::get(buf) {
        return Some(map_infer(t.mime_type()));
    }
    Some(sniff_text(buf))
}

fn sniff_binary(b: &[u8]) -> Option<&'static str> {
    let at = |off: usize, magic: &[u8]| b.len() >= off + magic.len() && &b[off..off + magic.len()] == magic;
    let t = if at(0, b"MZ") {
        "application/x-dosexec"
    } else if at(0, b"\x7fELF") {
        match b.get(16) {
            Some(3) => "application/x-sharedlib",
            Some(1) => "application/x-object",
            Some(4) => "application/x-coredump",
            _ => "application/x-executable",
        }
    } else if at(0, b"\xfe\xed\xfa\xce")
        || at(0, b"\xfe\xed\xfa\xcf")
        || at(0, b"\xce\xfa\xed\xfe")
        || at(0, b"\xcf\xfa\xed\xfe")
    {
        "application/x-mach-binary"
    } else if at(0, b"\xca\xfe\xba\xbe") {
        // Shared by Java class files and fat Mach-O: a fat binary has a small arch count where a
        // class file has its version (major >= 45).
        match b.get(4..8) {
            Some(v) if u32::from_be_bytes([v[0], v[1], v[2], v[3]]) < 40 => "application/x-mach-binary",
            _ => "application/x-java-applet",
        }
    } else if at(0, b"%PDF-") {
        "application/pdf"
    } else if at(0, b"PK\x03\x04") {
        sniff_zip(b)
    } else if at(0, b"MSCF\0\0\0\0") {
        "application/vnd.ms-cab-compressed"
    } else if at(0, b"ISc(") {
        "application/x-installshield"
    } else if (at(0, b"FWS") || at(0, b"CWS") || at(0, b"ZWS")) && b.len() >= 4 && b[3] < 60 {
        "application/x-shockwave-flash"
    } else if at(0, b"{\\rtf") {
        "text/rtf"
    } else if at(0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        // OLE2 compound file: infer knows the Office flavours; otherwise the container name.
        return Some(match infer::get(b).map(|t| t.mime_type()) {
            Some("application/msword") => "application/msword",
            Some("application/vnd.ms-excel") => "application/vnd.ms-excel",
            Some("application/vnd.ms-powerpoint") => "application/vnd.ms-powerpoint",
            Some("application/x-ole-storage") | None => "application/x-ole-storage",
            Some(other) => map_infer(other),
        });
    } else if at(0, b"\x1f\x8b") {
        "application/gzip"
    } else if at(0, b"7z\xbc\xaf\x27\x1c") {
        "application/x-7z-compressed"
    } else if at(0, b"Rar!\x1a\x07") {
        "application/x-rar"
    } else if at(0, b"BZh") && b.len() > 3 && (b'1'..=b'9').contains(&b[3]) {
        "application/x-bzip2"
    } else if at(0, b"\xfd7zXZ\0") {
        "application/x-xz"
    } else if at(0, b"\x28\xb5\x2f\xfd") {
        "application/zstd"
    } else if at(257, b"ustar") {
        "application/x-tar"
    } else if at(0, b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if at(0, b"GIF87a") || at(0, b"GIF89a") {
        "image/gif"
    } else if at(0, b"\xff\xd8\xff") {
        "image/jpeg"
    } else if at(0, b"RIFF") && at(8, b"WEBP") {
        "image/webp"
    } else if at(0, b"II*\0") || at(0, b"MM\0*") {
        "image/tiff"
    } else if at(0, b"\0\0\x01\0") && b.len() > 6 && b[4] != 0 {
        "image/vnd.microsoft.icon"
    } else if at(0, b"\0asm") {
        "application/wasm"
    } else if at(0, b"dex\n") {
        "application/x-android-dex"
    } else if at(0, b"!<arch>\ndebian") {
        "application/vnd.debian.binary-package"
    } else if at(0, b"\xed\xab\xee\xdb") {
        "application/x-rpm"
    } else if at(0, b"%!PS") {
        "application/postscript"
    } else if at(0, b"\x78\x9f\x3e\x22") {
        // Outlook's winmail.dat
        "application/vnd.ms-tnef"
    } else {
        return None;
    };
    Some(t)
}

/// ZIP and its children (Office Open XML, JAR, APK, OpenDocument), from the local file headers
/// that fit in the sniff buffer.
fn sniff_zip(b: &[u8]) -> &'static str {
    let mut off = 0usize;
    let mut seen_content_types = false;
    for _ in 0..64 {
        let Some(h) = b.get(off..off + 30) else { break };
        if &h[..4] != b"PK\x03\x04" {
            break;
        }
        let csize = u32::from_le_bytes([h[18], h[19], h[20], h[21]]) as usize;
        let nlen = u16::from_le_bytes([h[26], h[27]]) as usize;
        let xlen = u16::from_le_bytes([h[28], h[29]]) as usize;
        let Some(name) = b.get(off + 30..off + 30 + nlen) else {
            break;
        };
        if name == b"mimetype" {
            let data = b
                .get(off + 30 + nlen + xlen..off + 30 + nlen + xlen + csize)
                .unwrap_or(&[]);
            return match data {
                b"application/vnd.oasis.opendocument.text" => "application/vnd.oasis.opendocument.text",
                b"application/vnd.oasis.opendocument.spreadsheet" => "application/vnd.oasis.opendocument.spreadsheet",
                b"application/vnd.oasis.opendocument.presentation" => "application/vnd.oasis.opendocument.presentation",
                b"application/epub+zip" => "application/epub+zip",
                _ => "application/zip",
            };
        }
        if name == b"[Content_Types].xml" {
            seen_content_types = true;
        }
        if name.starts_with(b"word/") {
            return "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        }
        if name.starts_with(b"xl/") {
            return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
        }
        if name.starts_with(b"ppt/") {
            return "application/vnd.openxmlformats-officedocument.presentationml.presentation";
        }
        if name == b"AndroidManifest.xml" || name == b"classes.dex" {
            return "application/vnd.android.package-archive";
        }
        if name.starts_with(b"META-INF/") || name.ends_with(b".class") {
            return "application/java-archive";
        }
        let flags = u16::from_le_bytes([h[6], h[7]]);
        if flags & 0x8 != 0 {
            // Sizes follow the data (data descriptor): the next header cannot be located.
            break;
        }
        off += 30 + nlen + xlen + csize;
    }
    if seen_content_types {
        "application/vnd.openxmlformats-officedocument"
    } else {
        "application/zip"
    }
}

fn map_infer(m: &'static str) -> &'static str {
    match m {
        "application/vnd.microsoft.portable-executable" => "application/x-dosexec",
        "application/x-ole-storage" => "application/x-ole-storage",
        "application/java" => "application/x-java-applet",
        "application/vnd.rar" => "application/x-rar",
        other => other,
    }
}

/// Text flavours, for content no magic number claimed.
fn sniff_text(b: &[u8]) -> &'static str {
    let body = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
    let trimmed = {
        let start = body.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(body.len());
        &body[start..]
    };
    if !looks_like_text(body) {
        return "application/octet-stream";
    }
    let lower_prefix: Vec<u8> = trimmed.iter().take(256).map(u8::to_ascii_lowercase).collect();
    let starts = |p: &[u8]| lower_prefix.starts_with(p);
    if starts(b"<!doctype html")
        || starts(b"<html")
        || starts(b"<head")
        || starts(b"<body")
        || starts(b"<script")
        || starts(b"<title")
        || starts(b"<iframe")
        || starts(b"<!--") && memchr::memmem::find(&lower_prefix, b"<html").is_some()
    {
        "text/html"
    } else if starts(b"<?xml") {
        if memchr::memmem::find(&lower_prefix, b"<svg").is_some() {
            "image/svg+xml"
        } else {
            "text/xml"
        }
    } else if starts(b"<svg") {
        "image/svg+xml"
    } else if starts(b"<?php") {
        "text/x-php"
    } else if starts(b"#!") {
        if memchr::memmem::find(&lower_prefix[..lower_prefix.len().min(64)], b"python").is_some() {
            "text/x-python"
        } else {
            "text/x-shellscript"
        }
    } else if (starts(b"{") || starts(b"[")) && looks_like_json(trimmed) {
        // Zeek's name for JSON content.
        "text/json"
    } else {
        "text/plain"
    }
}

fn looks_like_text(b: &[u8]) -> bool {
    let sample = &b[..b.len().min(1024)];
    if sample.contains(&0) {
        return false;
    }
    let control = sample
        .iter()
        .filter(|&&c| c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b))
        .count();
    if control * 20 > sample.len().max(1) {
        return false;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => true,
        // A multi-byte character cut at the sample's end is still text.
        Err(e) if e.error_len().is_none() => true,
        // Latin-1 and friends: mostly printable bytes.
        Err(_) => sample.iter().filter(|&&c| c >= 0x80).count() * 4 < sample.len(),
    }
}

fn looks_like_json(b: &[u8]) -> bool {
    // The first structural tokens must be JSON-like: `{"` / `[` followed by a value start.
    let rest: Vec<u8> = b.iter().copied().filter(|c| !c.is_ascii_whitespace()).take(2).collect();
    matches!(rest.as_slice(), [b'{', b'"'] | [b'{', b'}'] | [b'[', _])
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn executables() {
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0"), Some("application/x-dosexec"));
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0".to_vec();
        assert_eq!(sniff(&elf), Some("application/x-executable"));
        elf[16] = 3;
        assert_eq!(sniff(&elf), Some("application/x-sharedlib"));
        assert_eq!(
            sniff(b"\xcf\xfa\xed\xfe\x07\0\0\x01"),
            Some("application/x-mach-binary")
        );
        assert_eq!(sniff(b"\xca\xfe\xba\xbe\0\0\0\x34"), Some("application/x-java-applet"));
        assert_eq!(sniff(b"\xca\xfe\xba\xbe\0\0\0\x02"), Some("application/x-mach-binary"));
    }

    #[test]
    fn documents_and_archives() {
        assert_eq!(sniff(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(
            sniff(b"MSCF\0\0\0\0\x10\0\0\0"),
            Some("application/vnd.ms-cab-compressed")
        );
        assert_eq!(sniff(b"CWS\x0a\0\0\0\0"), Some("application/x-shockwave-flash"));
        assert_eq!(sniff(b"{\\rtf1\\ansi"), Some("text/rtf"));
        assert_eq!(
            sniff(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0"),
            Some("application/x-ole-storage")
        );
        assert_eq!(sniff(b"\x1f\x8b\x08\0"), Some("application/gzip"));
        assert_eq!(sniff(b"7z\xbc\xaf\x27\x1c\0\x04"), Some("application/x-7z-compressed"));
        assert_eq!(sniff(b"Rar!\x1a\x07\x01\0"), Some("application/x-rar"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0"), Some("image/png"));
        assert_eq!(sniff(b"GIF89a\x01\0"), Some("image/gif"));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), Some("image/jpeg"));
        assert_eq!(sniff(b"\x78\x9f\x3e\x22\x01\x00"), Some("application/vnd.ms-tnef"));
    }

    fn zip_entry(name: &str, data: &[u8]) -> Vec<u8> {
        let mut v = b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(&(name.len() as u16).to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn zip_children() {
        let mut docx = zip_entry("[Content_Types].xml", b"<Types/>");
        docx.extend(zip_entry("word/document.xml", b"<w/>"));
        assert_eq!(
            sniff(&docx),
            Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        );
        let jar = zip_entry("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n");
        assert_eq!(sniff(&jar), Some("application/java-archive"));
        let zip = zip_entry("readme.txt", b"hi");
        assert_eq!(sniff(&zip), Some("application/zip"));
    }

    #[test]
    fn text_flavours() {
        assert_eq!(sniff(b"  <!DOCTYPE html><html>"), Some("text/html"));
        assert_eq!(sniff(b"<HTML><BODY>hi"), Some("text/html"));
        assert_eq!(sniff(b"{\"a\": 1}"), Some("text/json"));
        assert_eq!(sniff(b"hello world\r\n"), Some("text/plain"));
        assert_eq!(sniff(b"#!/bin/sh\necho hi"), Some("text/x-shellscript"));
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><root/>"), Some("text/xml"));
        assert_eq!(
            sniff(b"\x01\x02\x03\x04\x05\x06\0\x07"),
            Some("application/octet-stream")
        );
        assert_eq!(sniff(b""), None);
    }
}
