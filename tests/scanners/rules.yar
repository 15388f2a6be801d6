// Test-only YARA rules for tests/scanners.rs (no modules: the build's yara-x has none compiled in).
// They match the PDF that the corpus capture sv-issue-3703 carries (467659.pdf, 9952 bytes,
// sha256 02f43016...3fa5), and nothing a real network would plausibly carry.

rule Xdpcarve_Test_Pdf3703
{
    meta:
        description = "test-only: the pdfTeX document of corpus case sv-issue-3703"
    strings:
        $id = "E0C5662C9B0C79D6B64A26AD1533DCD1"   // the document /ID in its trailer
        $tex = "pdfTeX-1.40.18"
    condition:
        uint32(0) == 0x46445025 and filesize == 9952 and all of them   // "%PDF"
}

rule Xdpcarve_Test_Never
{
    strings:
        $a = "xdpcarve-test: this string is in no test file"
    condition:
        $a
}
