# The generated tables and figures -> results/<study>/paper.pdf (paper/main.tex \input{}s them).
# Needs latexmk and pdflatex: `make paper` installs them from Debian.


rule paper:
    input:
        tex=local(str(Path(workflow.basedir) / "paper" / "main.tex")),  # repo files, never in storage
        bib=local(str(Path(workflow.basedir) / "paper" / "references.bib")),
        datasets=rules.datasets_table.output,
        report=rules.report.output,
    output:
        PATHS.paper,
    log:
        PATHS.log(PATHS.paper),
    params:
        results=PATHS.results,
    shell:
        "{SPECBENCH} paper {params.results} --out {output} > {log} 2>&1"
