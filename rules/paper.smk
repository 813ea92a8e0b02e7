# The generated tables and figures -> results/paper.pdf (paper/main.tex \input{}s them; a missing
# one is skipped with a note). Needs latexmk and pdflatex: `make paper` installs them from Debian.


rule paper:
    input:
        tex=local(str(Path(workflow.basedir) / "paper" / "main.tex")),  # a repo file, never in storage
        report=rules.report.output,
    output:
        "results/paper.pdf",
    log:
        "results/logs/paper.log",
    shell:
        "latexmk -pdf -interaction=nonstopmode -halt-on-error -output-directory=results/.paper {input.tex}"
        " > {log} 2>&1 && cp results/.paper/main.pdf {output}"
