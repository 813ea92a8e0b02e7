# The generated tables and figures -> results/paper.pdf (paper/main.tex \input{}s them; a missing
# one is skipped with a note). Needs latexmk and pdflatex: `make paper` installs them from Debian.


rule paper:
    input:
        tex=local(str(Path(workflow.basedir) / "paper" / "main.tex")),  # a repo file, never in storage
        report=rules.report.output,
    output:
        PATHS.paper,
    log:
        PATHS.log(PATHS.paper),
    params:
        build=PATHS.paper_build,
    shell:
        "latexmk -pdf -interaction=nonstopmode -halt-on-error -output-directory={params.build} {input.tex}"
        " > {log} 2>&1 && cp {params.build}/main.pdf {output}"
